"""Chat clients for LLM and VLM feedback: any OpenAI-compatible server, with a disk cache, and replays.

One interface, ``complete(messages, n, temperature, seed) -> list[str]``: :class:`OpenAICompatible`
over the ``openai`` package, so that vLLM, Ollama, the llama.cpp server and hosted APIs all work
by their ``base_url``, and :class:`Replay`, which serves recorded answers (tests, reproducible
benchmarks; ``OpenAICompatible(record=path)`` writes such a file). Messages are OpenAI chat
messages; a VLM query puts images in them as ``image_url`` parts with ``data:`` URLs
(:func:`image_part`). Every answer is cached on disk under a hash of (base_url, model, messages,
n, temperature, seed), so a rerun asks the server nothing; token usage is recorded per call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEFAULT_CACHE = Path(os.environ.get("ROBOFEEDBACK_CACHE", Path.home() / ".cache" / "robofeedback")) / "chat"


def image_part(image: np.ndarray) -> dict[str, Any]:
    """An OpenAI ``image_url`` message part holding ``image`` (H, W, 3 uint8 RGB) as a PNG data URL."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 of shape (H, W, 3), got {image.dtype} {image.shape}")
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as PNG")
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}


class DiskCache:
    """Answers stored as one JSON file per key under ``directory`` (written atomically)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def key(self, **request: Any) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> list[str] | None:
        path = self.directory / key[:2] / f"{key}.json"
        return json.loads(path.read_text())["answers"] if path.exists() else None

    def put(self, key: str, answers: list[str]) -> None:
        path = self.directory / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"answers": answers}))
        os.replace(tmp, path)


class OpenAICompatible:
    """A chat model behind any OpenAI-compatible endpoint.

    ``api_key_env`` names the environment variable holding the key (local servers
    that need none get a placeholder). Transient failures (connection errors, 408,
    409, 429, 5xx) are retried ``max_retries`` times with exponential backoff by the
    ``openai`` client; each request times out after ``timeout`` seconds. ``cache``
    is a folder, or ``None`` to ask the server every time. ``usage`` lists each
    server call's token counts.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 4,
        cache: str | Path | None = DEFAULT_CACHE,
        record: str | Path | None = None,
    ):
        try:
            from openai import OpenAI
        except ImportError:
            raise ImportError("chat models need the openai package: pip install 'robofeedback[llm]'") from None
        if not base_url or not model:
            raise ValueError(f"base_url and model are required, got base_url={base_url!r}, model={model!r}")
        if timeout <= 0 or max_retries < 0:
            raise ValueError(f"timeout must be > 0 and max_retries >= 0, got {timeout}, {max_retries}")
        self.base_url, self.model = base_url.rstrip("/"), model
        api_key = os.environ.get(api_key_env) or "no-key"
        self.client = OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.cache = DiskCache(cache) if cache is not None else None
        self.record = Path(record) if record is not None else None
        self.usage: list[dict[str, Any]] = []

    def complete(
        self, messages: list[dict[str, Any]], n: int = 1, temperature: float = 0.0, seed: int | None = None
    ) -> list[str]:
        """``n`` answers to ``messages`` (from the cache when this exact request was made before)."""
        if not messages:
            raise ValueError("messages must hold at least one chat message")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        request = {
            "base_url": self.base_url,
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": temperature,
            "seed": seed,
        }
        key = self.cache.key(**request) if self.cache is not None else ""
        if self.cache is not None and (cached := self.cache.get(key)) is not None:
            return self._recorded(messages, cached)
        answers: list[str] = []
        while len(answers) < n:  # servers that ignore n (Ollama, llama.cpp) answer once per request
            start = time.monotonic()
            call_seed = None if seed is None else seed + len(answers)
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, n=n - len(answers), temperature=temperature, seed=call_seed
            )
            answers += [choice.message.content or "" for choice in response.choices][: n - len(answers)]
            usage = response.usage
            self.usage.append(
                {
                    "prompt_tokens": getattr(usage, "prompt_tokens", None),
                    "completion_tokens": getattr(usage, "completion_tokens", None),
                    "seconds": round(time.monotonic() - start, 3),
                }
            )
            if not response.choices:
                raise RuntimeError(f"{self.base_url} answered with no choices")
        if self.cache is not None:
            self.cache.put(key, answers)
        return self._recorded(messages, answers)

    def _recorded(self, messages: list[dict[str, Any]], answers: list[str]) -> list[str]:
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with open(self.record, "a") as f:
                f.write(json.dumps({"request": _text_of(messages), "answers": answers}) + "\n")
        return answers


class Replay:
    """Serves recorded answers in order, one line of a JSONL file per call: ``{"answers": [...]}`` (and,
    optionally, the ``request`` text it answered, for the reader). A call asking for more answers than
    the line holds, or a call after the last line, is an error: the replay no longer matches the run."""

    def __init__(self, path: str | Path, model: str = "replay"):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no recorded answers at {self.path}")
        self.lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        for i, line in enumerate(self.lines):
            answers = line.get("answers") if isinstance(line, dict) else None
            if not (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers)):
                raise ValueError(f'{self.path} line {i + 1}: expected {{"answers": ["...", ...]}}')
        self.model, self.position = model, 0
        self.usage: list[dict[str, Any]] = []

    def complete(
        self, messages: list[dict[str, Any]], n: int = 1, temperature: float = 0.0, seed: int | None = None
    ) -> list[str]:
        if self.position >= len(self.lines):
            raise RuntimeError(f"{self.path} has only {len(self.lines)} recorded calls; call {self.position + 1} asked")
        answers = self.lines[self.position]["answers"]
        if len(answers) < n:
            raise RuntimeError(f"{self.path} line {self.position + 1} holds {len(answers)} answers, {n} asked")
        self.position += 1
        return answers[:n]


def _text_of(messages: list[dict[str, Any]]) -> str:
    """The text of chat messages, images left out (for recordings a person can read)."""
    parts = []
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, list):
            content = " ".join(p.get("text", "[image]") for p in content)
        parts.append(f"{message.get('role', 'user')}: {content}")
    return "\n".join(parts)
