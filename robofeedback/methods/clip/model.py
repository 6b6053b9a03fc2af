"""VLM-RM's reward: the goal-baseline regularised CLIP similarity of each rendered frame to a language goal.

R_CLIP-Reg (Rocamonde et al. 2023, Eq. 2) is computed by :class:`~robofeedback.feedback.clip_model.GoalSimilarity`,
which the CLIP judges share; this module makes it a reward function: scaled, optionally standardised, and scored
on every k-th step or at an episode's end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robofeedback.config import require_positive_ints
from robofeedback.feedback.clip_model import MINI_CLIP, GoalSimilarity
from robofeedback.protocols import RewardFunction, Transitions

PRETRAINED_FORMAT = "robofeedback-clip-reward"
PRETRAINED_VERSION = 1
OPEN_CLIP_FILES = ("open_clip_config.json", "open_clip_model.safetensors")


def model_card(config: dict[str, Any], card: dict[str, Any]) -> str:
    """A saved :class:`ClipReward`'s card: what it is, its prompts and settings, the CLIP model it came from, how to
    load it with robofeedback and with open_clip alone, and the ``card`` notes (``license``, ``env``, any other)."""
    settings, source = config["reward"], config["source"]
    baseline = settings["baseline"]
    pretrained = f" ({source['pretrained']})" if source["pretrained"] else ""
    if source["model"] == MINI_CLIP:
        pretrained = " (robofeedback's mini CLIP, trained on panda-gym and MetaWorld renders)"
    notes = {k: v for k, v in card.items() if k not in ("license", "env")}
    lines = [
        "---",
        f"license: {card.get('license', 'unknown')}",
        "library_name: open_clip",
        "tags: [robofeedback, reward-model, clip, vlm-rm, robotics]",
        "---",
        "",
        "# ClipReward: a CLIP reward for a language goal",
        "",
        "VLM-RM's reward (Rocamonde et al. 2023, arXiv 2310.12921): the goal-baseline regularised CLIP similarity "
        "of each rendered frame to the goal prompt. Nothing here was learned from feedback; the CLIP model and the "
        "settings below make the reward.",
        "",
        f"- env: {card.get('env', 'not recorded')}",
        "- goal: " + " | ".join(f"`{p}`" for p in settings["goal"]),
        "- baseline: " + (" | ".join(f"`{p}`" for p in baseline) if baseline else "none"),
        f"- alpha: {settings['alpha']}, scale: {settings['scale']}, normalize: {settings['normalize']}, "
        f"every: {settings['every']}, at_episode_end: {settings['at_episode_end']}",
        f"- CLIP model: {source['model']}{pretrained}, input size {config['image_size']} px",
        *(f"- {key}: {value}" for key, value in notes.items()),
        "",
        "## Loading",
        "",
        "With robofeedback (the reward, its settings and running statistics, from `config.json`):",
        "",
        "```python",
        "from robofeedback.methods.clip.model import ClipReward",
        'reward = ClipReward.from_pretrained("path/to/this/folder")',
        "```",
        "",
        f"With open_clip alone (the CLIP model, from `{OPEN_CLIP_FILES[0]}` and `{OPEN_CLIP_FILES[1]}`):",
        "",
        "```python",
        "import open_clip",
        'model, _, preprocess = open_clip.create_model_and_transforms("local-dir:path/to/this/folder")',
        'tokenizer = open_clip.get_tokenizer("local-dir:path/to/this/folder")',
        "```",
        "",
        'From the Hugging Face Hub, use `"hf-hub:OWNER/NAME"` in place of `"local-dir:..."`.',
        "",
    ]
    return "\n".join(lines)


class ClipReward(RewardFunction):
    """VLM-RM reward: the goal-baseline regularised CLIP similarity of each frame to a language goal.

    ``goal`` and ``baseline`` are a prompt or a list of prompts (a list's normalised embeddings are
    averaged, as the authors' code does); ``alpha`` needs a baseline. ``scale`` multiplies the reward;
    ``normalize`` standardises it with running statistics of every reward computed so far. ``every=k``
    scores (and renders) every k-th step of an episode and holds the last score between; ``at_episode_end``
    scores only the last step (0 elsewhere). ``precision="bf16"`` runs the image encoder in bfloat16; ``device``
    defaults to the GPU when there is one.
    """

    needs_frames = True

    def __init__(
        self,
        goal: str | Sequence[str],
        baseline: str | Sequence[str] | None = None,
        alpha: float = 0.0,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        device: str | None = None,
        precision: str = "fp32",
        batch_size: int = 64,
        scale: float = 1.0,
        normalize: bool = False,
        every: int = 1,
        at_episode_end: bool = False,
    ):
        require_positive_ints(every=every)
        self.scale, self.normalize = float(scale), bool(normalize)
        self.reward_every, self.reward_at_episode_end = every, bool(at_episode_end)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0
        self.similarity = GoalSimilarity(goal, baseline, alpha, model, pretrained, device, precision, batch_size)
        self.source = {"model": model, "pretrained": pretrained}

    @property
    def image_size(self) -> int:
        """The CLIP model's input size: render frames at it."""
        return self.similarity.image_size

    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)`` of uint8 frames ``(N, H, W, 3)``."""
        return self.similarity.clip.embed_images(frames)

    def reward_from_embeddings(self, x: torch.Tensor) -> np.ndarray:
        """The reward of normalised image embeddings ``x`` ``(N, D)``, before scaling."""
        return self.similarity.from_embeddings(x)

    def reward(self, batch: Transitions) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("ClipReward scores rendered frames: the batch has none (use the reward wrappers)")
        r = self.reward_from_embeddings(self.embed_images(batch.frames)) * self.scale
        if not self.normalize:
            return r
        for value in r:  # Welford's running mean and variance
            self._count += 1
            delta = value - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (value - self._mean)
        std = np.sqrt(self._m2 / self._count) if self._count > 1 else 1.0
        return np.clip((r - self._mean) / max(std, 1e-6), -5.0, 5.0).astype(np.float32)

    def save_pretrained(self, folder: str | Path, card: dict[str, Any] | None = None) -> Path:
        """The reward as a folder: the CLIP model in open_clip's convention (``open_clip_config.json`` and
        ``open_clip_model.safetensors``, which open_clip opens as ``local-dir:<folder>`` or ``hf-hub:<repo>``),
        ``config.json`` (the prompts, settings, running statistics and the CLIP model it came from) and a model
        card, ``README.md``, with the ``card`` notes: ``license``, ``env`` (the task the prompts describe), any
        other ``key: value``."""
        folder = Path(folder)
        self.similarity.clip.save_open_clip(folder)
        similarity = self.similarity
        config = {
            "format": PRETRAINED_FORMAT,
            "format_version": PRETRAINED_VERSION,
            "class": type(self).__name__,
            "reward": {
                "goal": similarity.goals,
                "baseline": similarity.baselines or None,
                "alpha": similarity.alpha,
                "scale": self.scale,
                "normalize": self.normalize,
                "every": self.reward_every,
                "at_episode_end": self.reward_at_episode_end,
                "precision": similarity.clip.precision,
                "batch_size": similarity.clip.batch_size,
            },
            "running_stats": {"count": self._count, "mean": float(self._mean), "m2": float(self._m2)},
            "source": self.source,
            "image_size": self.image_size,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (folder / "README.md").write_text(model_card(config, card or {}))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | None = None) -> ClipReward:
        """A reward saved with :meth:`save_pretrained`, its CLIP model on ``device`` (the GPU when there is one). A
        folder that is not one (missing files, another ``config.json``, a format version this code does not read)
        is a ``ValueError`` that says which."""
        folder = Path(folder).resolve()
        missing = [name for name in ("config.json", *OPEN_CLIP_FILES) if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{folder} is not a saved CLIP reward: it has no {', '.join(missing)}")
        saved = json.loads((folder / "config.json").read_text())
        if saved.get("format") != PRETRAINED_FORMAT:
            raise ValueError(
                f"{folder}/config.json is not a robofeedback CLIP reward (format {saved.get('format')!r}, "
                f"expected {PRETRAINED_FORMAT!r})"
            )
        if saved.get("format_version") != PRETRAINED_VERSION:
            raise ValueError(
                f"{folder} is CLIP-reward format version {saved.get('format_version')}; this robofeedback reads "
                f"version {PRETRAINED_VERSION}"
            )
        settings = dict(saved["reward"])
        reward = cls(settings.pop("goal"), model=str(folder), device=device, **settings)
        stats = saved["running_stats"]
        reward._count, reward._mean, reward._m2 = int(stats["count"]), float(stats["mean"]), float(stats["m2"])
        reward.source = saved["source"]
        return reward
