"""Vision-language judges: preference labels from how two segments' final frames look.

A judge compares two segments by one image each: the segment's last frame, with
the agent's path sketched on it (VARP) or plain (RL-VLM-F), so that the sketch's
effect can be measured. It answers the feedback loop's queries like any other
source, with ``vlm:<model>`` provenance and the reasoning (or scores) as the
label's note.

- :class:`ChatVLMJudge` asks any OpenAI-compatible vision chat model with RL-VLM-F's
  two-stage query: first an analysis of both images, then, from that analysis
  alone, a label 0 (image 1), 1 (image 2) or -1 (unsure).
- :class:`ClipJudge` is offline: the image with the higher CLIP goal similarity wins,
  unless the two differ by less than ``margin``.

A -1 (and an answer that cannot be parsed) becomes ``uncertain``: "skip" by
default (the label is dropped, as RL-VLM-F does) or "equal".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robofeedback.data.sketch import CameraLike, last_frame, sketch_segment
from robofeedback.data.store import FeedbackStore, Query, StoredSegment, check_source
from robofeedback.data.trajectory import Segment
from robofeedback.feedback.llm import OpenAICompatible, image_part
from robofeedback.feedback.sources import FeedbackSource
from robofeedback.rewards.clip import ClipReward  # a judge that scores with VLM-RM's reward

PROMPTS = Path(__file__).resolve().parent / "prompts"

# What the judges are told about the benchmark tasks: the task in words (chat judge) and the CLIP goal and baseline.
TASKS = {
    "metaworld:drawer-open": {
        "task": "to pull the drawer open",
        "goal": "the drawer is open",
        "baseline": "the drawer is closed",
    },
    "metaworld:sweep-into": {
        "task": "to sweep the cube into the hole in the table",
        "goal": "the cube is in the hole",
        "baseline": "the cube is on the table",
    },
    "metaworld:soccer": {
        "task": "to push the soccer ball into the goal",
        "goal": "the ball is in the goal",
        "baseline": "the ball is far from the goal",
    },
    "panda:PandaPush-v3": {
        "task": "to push the cube onto the green target",
        "goal": "the cube is on the target",
        "baseline": "the cube is away from the target",
    },
    "bullet:HopperBulletEnv-v0": {
        "task": "for the hopper to hop forward as far as it can without falling",
        "goal": "a one-legged robot hopping upright",
        "baseline": "a one-legged robot fallen on the ground",
    },
    "bullet:HalfCheetahBulletEnv-v0": {
        "task": "for the cheetah robot to run forward fast",
        "goal": "a robot running forward",
        "baseline": "a robot lying still",
    },
}


def task_prompts(spec: str) -> dict[str, str]:
    """The known task text, CLIP goal and baseline for ``spec`` (MetaWorld's ``-v3`` suffix and panda's ``Dense``
    ignored); empty if unknown."""
    if spec.startswith("metaworld:"):
        spec = spec.removesuffix("-v3")
    return TASKS.get(spec.replace("Dense", "") if spec.startswith("panda:") else spec, {})


UNCERTAIN = ("skip", "equal")
_ANSWER = re.compile(r"(?<![\w.-])(-1|0|1)(?![\w.])")


class ImageJudge(FeedbackSource):
    """Base class: labels a pair of segments from one image of each, their last frames, sketched or plain.

    ``camera`` projects the agent's path for the sketch: a Camera, or a callable
    such as ``env.camera_at`` giving the camera for the agent's final position; the
    training code sets it from the env (:meth:`attach`) when it is not given.
    ``sketch_kwargs`` go to :func:`robofeedback.data.sketch.sketch` (colours, width).
    """

    needs_frames = True

    def __init__(
        self,
        sketch: bool = True,
        camera: CameraLike | None = None,
        sketch_kwargs: dict | None = None,
        uncertain: str = "skip",
    ):
        if uncertain not in UNCERTAIN:
            raise ValueError(f"uncertain must be one of {UNCERTAIN}, got {uncertain!r}")
        self.sketch, self.camera = bool(sketch), camera
        self.sketch_kwargs = dict(sketch_kwargs or {})
        self.uncertain = uncertain

    def attach(self, env) -> None:
        """Take the sketch camera from ``env`` (a robofeedback env) unless one was given."""
        if self.camera is None:
            self.camera = env.camera_at

    def image(self, segment: Segment | StoredSegment) -> np.ndarray:
        """What the judge looks at for ``segment``: its last frame, with the agent's path drawn when sketching."""
        if not self.sketch:
            return last_frame(segment)
        if self.camera is None:
            raise ValueError("sketching needs the env's camera: pass camera= (e.g. env.camera_at) or attach(env)")
        return sketch_segment(segment, self.camera, **self.sketch_kwargs)

    def compare(self, image_a: np.ndarray, image_b: np.ndarray) -> tuple[str, str]:
        """``("a" | "b" | "uncertain", note)`` for one pair of images."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compare()")

    def compare_many(self, images: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, str]]:
        """:meth:`compare` for each pair of images (judges that can batch override this)."""
        return [self.compare(a, b) for a, b in images]

    def label_many(self, pairs: Sequence[tuple]) -> list[tuple[str, str]]:
        """``(value, note)`` for each pair of segments; value is "a", "b" or the ``uncertain`` setting."""
        judged = self.compare_many([(self.image(a), self.image(b)) for a, b in pairs]) if pairs else []
        return [(self.uncertain if value == "uncertain" else value, note) for value, note in judged]

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        labels = self.label_many([(segments[q.segment_ids[0]], segments[q.segment_ids[1]]) for q in queries])
        for query, (value, note) in zip(queries, labels, strict=True):
            store.answer_query(query.id, self.source, value=value, note=note)


class ClipJudge(ImageJudge):
    """Offline judge: prefers the image whose CLIP goal similarity (VLM-RM's reward, with an optional baseline and
    alpha) is higher by at least ``margin``; within the margin it is uncertain. Uses the mini CLIP by default."""

    def __init__(
        self,
        goal: str | Sequence[str],
        baseline: str | Sequence[str] | None = None,
        alpha: float = 0.0,
        model: str = "mini",
        pretrained: str | None = None,
        margin: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.clip = ClipReward(goal, baseline, alpha=alpha, model=model, pretrained=pretrained)
        self.margin = float(margin)
        name = Path(model).name if Path(model).is_dir() else model
        self.source = check_source(f"vlm:clip-{name}" + (f"-{Path(pretrained).stem}" if pretrained else ""))

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The CLIP goal similarity of each image ``(N, H, W, 3)``."""
        return self.clip.reward_from_embeddings(self.clip.embed_images(np.asarray(images)))

    def compare_many(self, images: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, str]]:
        scores = self.scores(np.stack([image for pair in images for image in pair])).reshape(-1, 2)
        return [self._decide(s_a, s_b) for s_a, s_b in scores]

    def compare(self, image_a: np.ndarray, image_b: np.ndarray) -> tuple[str, str]:
        return self.compare_many([(image_a, image_b)])[0]

    def _decide(self, s_a: float, s_b: float) -> tuple[str, str]:
        value = "uncertain" if abs(s_a - s_b) < self.margin else ("a" if s_a > s_b else "b")
        return value, f"clip similarity a={s_a:.4f} b={s_b:.4f}"


class ChatVLMJudge(ImageJudge):
    """A vision chat model (any OpenAI-compatible endpoint) labels pairs with RL-VLM-F's two-stage query.

    Stage 1 sends both images with the analysis prompt; stage 2 sends the analysis,
    as text only, with the labelling prompt, and the first 0 / 1 / -1 in the reply is
    the label. The prompts are files, ``varp_analysis.txt`` and ``varp_label.txt`` for
    sketched images, ``plain_analysis.txt`` and ``plain_label.txt`` for plain ones, in ``prompts`` (a
    folder of the user's own, default the shipped ones); ``{task}``, ``{analysis}``
    and the places of ``{image_1}`` and ``{image_2}`` are filled in. ``client`` is an
    :class:`~robofeedback.feedback.llm.OpenAICompatible` (calls cached on disk), or is
    made from ``base_url``, ``model`` and ``api_key_env``.
    """

    def __init__(
        self,
        task: str,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        client: OpenAICompatible | None = None,
        prompts: str | Path | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must describe the goal in words, got {task!r}")
        if client is None:
            if not base_url or not model:
                raise ValueError("ChatVLMJudge needs client=, or base_url= and model= of an OpenAI-compatible server")
            client = OpenAICompatible(base_url, model, api_key_env)
        self.client, self.task = client, task.strip()
        self.temperature, self.seed = temperature, seed
        folder = Path(prompts) if prompts is not None else PROMPTS
        stem = "varp" if self.sketch else "plain"
        self.analysis_prompt = _read_prompt(folder / f"{stem}_analysis.txt", ("{task}", "{image_1}", "{image_2}"))
        self.label_prompt = _read_prompt(folder / f"{stem}_label.txt", ("{task}", "{analysis}"))
        self.source = check_source(f"vlm:{re.sub(r'[^A-Za-z0-9_.@/-]', '-', client.model)}")

    def compare(self, image_a: np.ndarray, image_b: np.ndarray) -> tuple[str, str]:
        before, rest = self.analysis_prompt.replace("{task}", self.task).split("{image_1}", 1)
        middle, after = rest.split("{image_2}", 1)
        content = [
            {"type": "text", "text": before},
            image_part(image_a),
            {"type": "text", "text": middle},
            image_part(image_b),
            {"type": "text", "text": after},
        ]
        content = [part for part in content if part.get("text", True)]
        (analysis,) = self.client.complete([{"role": "user", "content": content}], 1, self.temperature, self.seed)
        prompt = self.label_prompt.replace("{task}", self.task).replace("{analysis}", analysis.strip())
        (reply,) = self.client.complete([{"role": "user", "content": prompt}], 1, self.temperature, self.seed)
        return parse_label(reply), f"analysis: {analysis.strip()}\nlabel reply: {reply.strip()}"


def parse_label(reply: str) -> str:
    """``"a"`` for 0, ``"b"`` for 1, ``"uncertain"`` for -1 or a reply with no such number: the first 0, 1 or -1
    standing alone (not part of a longer number or word) in the reply."""
    match = _ANSWER.search(reply or "")
    if match is None:
        return "uncertain"
    return {"0": "a", "1": "b", "-1": "uncertain"}[match.group(1)]


def _read_prompt(path: Path, fields: tuple[str, ...]) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} is missing")
    text = path.read_text()
    missing = [f for f in fields if f not in text]
    if missing:
        raise ValueError(f"prompt file {path} must contain {missing}")
    return text
