"""Vision-language judges: preference labels from how two segments' final frames look, and feedback on how a
learner's video differs from an expert's.

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

For bi-level reward learning from expert videos (``robofeedback.methods.bilevel``),
judges compare two whole videos and return :class:`VideoFeedback` (text and a
similarity): :meth:`ChatVLMJudge.compare_videos` asks the chat model and keeps its
answer verbatim; :class:`ClipVideoJudge` is the offline judge, which aligns the two
videos with dynamic time warping over CLIP embeddings and the frames' motion and
writes its feedback from that alignment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.data.sketch import CameraLike, last_frame, sketch_segment
from robofeedback.data.store import FeedbackStore, Query, StoredSegment, check_source
from robofeedback.data.trajectory import Segment
from robofeedback.data.video import frame_grid, sample_indices
from robofeedback.feedback.clip_model import MINI_CLIP, ClipModel, GoalSimilarity
from robofeedback.feedback.llm import OpenAICompatible, image_part
from robofeedback.protocols import FeedbackSource

PROMPTS = Path(__file__).resolve().parent / "prompts"

UNCERTAIN = ("skip", "equal")
VIDEO_LAYOUTS = ("grid", "sequence")
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

    @property
    def prompt(self) -> str | None:
        """What the judge is asked, kept with each of its labels (their payload's ``prompt``) as their provenance."""
        return None

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        labels = self.label_many([(segments[q.segment_ids[0]], segments[q.segment_ids[1]]) for q in queries])
        provenance = {"prompt": self.prompt} if self.prompt else {}
        for query, (value, note) in zip(queries, labels, strict=True):
            store.answer_query(query.id, self.source, value=value, note=note, **provenance)


class ClipJudge(ImageJudge):
    """Offline judge: prefers the image whose CLIP goal similarity (VLM-RM's reward, with an optional baseline and
    alpha) is higher by at least ``margin``; within the margin it is uncertain. Uses the mini CLIP by default, on
    ``device`` (the GPU when there is one)."""

    def __init__(
        self,
        goal: str | Sequence[str],
        baseline: str | Sequence[str] | None = None,
        alpha: float = 0.0,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        margin: float = 0.0,
        device: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.clip = GoalSimilarity(goal, baseline, alpha=alpha, model=model, pretrained=pretrained, device=device)
        self.margin = float(margin)
        name = Path(model).name if Path(model).is_dir() else model
        self.source = check_source(f"vlm:clip-{name}" + (f"-{Path(pretrained).stem}" if pretrained else ""))

    @property
    def prompt(self) -> str:
        """The goal prompts, the baseline prompts and alpha the similarity is taken with."""
        baseline = (
            f"; baseline: {' | '.join(self.clip.baselines)}; alpha {self.clip.alpha}" if self.clip.baselines else ""
        )
        return f"goal: {' | '.join(self.clip.goals)}{baseline}"

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The CLIP goal similarity of each image ``(N, H, W, 3)``."""
        return self.clip(np.asarray(images))

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
    sketched images, ``plain_analysis.txt`` and ``plain_label.txt`` for plain ones, taken from
    ``prompts`` (a folder of the user's own) where it has them and from the shipped ones
    otherwise; ``{task}``, ``{analysis}`` and the places of ``{image_1}`` and ``{image_2}`` are
    filled in. ``client`` is an :class:`~robofeedback.feedback.llm.OpenAICompatible` (calls cached
    on disk), or is made from ``base_url``, ``model`` and ``api_key_env``.

    :meth:`compare_videos` (bi-level reward learning) sends ``video_frames`` frames
    sampled from each video, as one numbered grid image per video (``video_layout="grid"``)
    or as a sequence of images (``"sequence"``), with ``video_compare.txt`` (fields ``{task}``,
    ``{expert}``, ``{learner}``).
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
        video_frames: int = 8,
        video_layout: str = "grid",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if video_layout not in VIDEO_LAYOUTS:
            raise ValueError(f"video_layout must be one of {VIDEO_LAYOUTS}, got {video_layout!r}")
        if not isinstance(video_frames, int) or video_frames < 2:
            raise ValueError(f"video_frames must be an integer >= 2, got {video_frames!r}")
        self.video_frames, self.video_layout = video_frames, video_layout
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must describe the goal in words, got {task!r}")
        if client is None:
            if not base_url or not model:
                raise ValueError("ChatVLMJudge needs client=, or base_url= and model= of an OpenAI-compatible server")
            client = OpenAICompatible(base_url, model, api_key_env)
        self.client, self.task = client, task.strip()
        self.temperature, self.seed = temperature, seed
        folder = Path(prompts) if prompts is not None else PROMPTS
        if not folder.is_dir():
            raise FileNotFoundError(f"prompts must be a folder of prompt files, got {folder}")

        def read(name: str, fields: tuple[str, ...]) -> str:
            return _read_prompt(folder / name if (folder / name).is_file() else PROMPTS / name, fields)

        stem = "varp" if self.sketch else "plain"
        self.analysis_prompt = read(f"{stem}_analysis.txt", ("{task}", "{image_1}", "{image_2}"))
        self.label_prompt = read(f"{stem}_label.txt", ("{task}", "{analysis}"))
        self.video_prompt = read("video_compare.txt", ("{task}", "{expert}", "{learner}"))
        self.source = check_source(f"vlm:{re.sub(r'[^A-Za-z0-9_.@/-]', '-', client.model)}")

    @property
    def prompt(self) -> str:
        """The two stages' prompts with the task filled in (the images and the analysis where they go)."""
        return "\n---\n".join(p.replace("{task}", self.task) for p in (self.analysis_prompt, self.label_prompt))

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

    def compare_videos(self, learner: np.ndarray, expert: np.ndarray, fps: float) -> VideoFeedback:
        """How the learner's motion differs from the expert's and how it should change, in the model's words
        (kept verbatim), and the similarity it gives on its ``SIMILARITY: <0-10>`` line (NaN without one)."""
        content: list[dict[str, Any]] = []
        rest = self.video_prompt.replace("{task}", self.task)
        for marker, frames in sorted((("{expert}", expert), ("{learner}", learner)), key=lambda m: rest.find(m[0])):
            before, rest = rest.split(marker, 1)
            content.append({"type": "text", "text": before})
            picked = np.asarray(frames)[sample_indices(len(frames), self.video_frames)]
            if self.video_layout == "grid":
                content.append(image_part(frame_grid(picked, cols=math.ceil(math.sqrt(len(picked))))))
            else:
                content += [image_part(frame) for frame in picked]
        content.append({"type": "text", "text": rest})
        content = [part for part in content if part.get("text", True)]
        (answer,) = self.client.complete([{"role": "user", "content": content}], 1, self.temperature, self.seed)
        return VideoFeedback(
            answer.strip(),
            parse_similarity(answer),
            self.source,
            {"frames_per_video": int(min(self.video_frames, len(learner))), "layout": self.video_layout, "fps": fps},
        )


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


_SIMILARITY = re.compile(r"similarity\W{0,3}(\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.IGNORECASE)


def parse_similarity(answer: str) -> float:
    """The last ``SIMILARITY: x`` (x from 0 to 10) in a chat judge's answer, as x / 10 clipped to [0, 1]; NaN when the
    answer has none."""
    matches = _SIMILARITY.findall(answer or "")
    return min(1.0, max(0.0, float(matches[-1]) / 10.0)) if matches else float("nan")


@dataclass
class VideoFeedback:
    """An upper-level judge's feedback on a learner's video next to the expert's: ``text`` (verbatim from a chat
    model), ``similarity`` in [0, 1] (NaN where the judge gave none), the ``judge``'s name, and the measurements the
    offline judge wrote its text from (``details``)."""

    text: str
    similarity: float
    judge: str
    details: dict[str, Any] = field(default_factory=dict)


def dtw(cost: np.ndarray) -> list[tuple[int, int]]:
    """Dynamic time warping: the monotone path from (0, 0) to (n-1, m-1) through an ``(n, m)`` cost matrix, in steps
    (1, 0), (0, 1) and (1, 1), whose summed cost is least (ties go to the diagonal)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape or not np.isfinite(cost).all():
        raise ValueError(f"cost must be a finite, non-empty 2-D matrix, got shape {cost.shape}")
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        from_above = np.minimum(total[i - 1, 1:], total[i - 1, :-1])  # (i-1, j) and (i-1, j-1)
        row = total[i]
        for j in range(1, m + 1):
            row[j] = cost[i - 1, j - 1] + min(from_above[j - 1], row[j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((s for s in steps if s[0] >= 1 and s[1] >= 1), key=lambda s: total[s])
        path.append((i - 1, j - 1))
    return path[::-1]


def motion_track(frames: np.ndarray, threshold: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Where the video moves, from frame differences: for each frame, the centre of the pixels whose grey level
    changed by more than ``threshold`` since the previous frame, as (x, y) in [0, 1] with y up (held from the last
    frame with motion, and before the first one taken from it), and the amount of change (mean absolute change of
    those pixels over the frame, in [0, 1]). The first frame's change is 0."""
    grey = np.asarray(frames, dtype=np.float32).mean(axis=-1)
    change = np.abs(np.diff(grey, axis=0))
    change[change < threshold] = 0.0
    height, width = grey.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width]
    energy = np.concatenate([[0.0], change.sum(axis=(1, 2))])
    centres = np.full((len(grey), 2), np.nan)
    for t in range(1, len(grey)):
        if energy[t] > 0:
            weights = change[t - 1] / energy[t]
            centres[t] = [(weights * xs).sum() / max(width - 1, 1), 1.0 - (weights * ys).sum() / max(height - 1, 1)]
    moving = np.flatnonzero(~np.isnan(centres[:, 0]))
    if len(moving) == 0:
        centres[:] = 0.5  # nothing moves: the image centre stands for everywhere
    else:
        centres[: moving[0]] = centres[moving[0]]
        for t in range(moving[0] + 1, len(grey)):
            if np.isnan(centres[t, 0]):
                centres[t] = centres[t - 1]
    return centres, energy / (height * width * 255.0)


def _direction_words(delta: np.ndarray) -> str:
    dx, dy = float(delta[0]), float(delta[1])
    if math.hypot(dx, dy) < 0.03:
        return "no net direction"
    words = []
    if abs(dx) >= 0.5 * abs(dy):
        words.append("right" if dx > 0 else "left")
    if abs(dy) >= 0.5 * abs(dx):
        words.append("up" if dy > 0 else "down")
    return "-".join(words)


class ClipVideoJudge:
    """The offline upper-level judge (CLIP and frame differences, not a VLM): aligns the learner's video with the
    expert's by dynamic time warping and writes structured feedback from the alignment.

    Each frame is described by its CLIP image embedding e (the mini CLIP by default), by where the video moves m
    and by how much it moves a (:func:`motion_track`). Frames i (learner) and j (expert) match by

        s_ij = max(0, cos(e_i, e_j)) * exp(-|m_i - m_j| / ``tau``) * (min(a_i, a_j) + eps) / (max(a_i, a_j) + eps)

    with eps a fifth of the expert's mean motion (so that a still frame matches a still frame, and not a moving
    one), and DTW finds the alignment that maximises the summed s. The similarity is the mean s along it.
    The expert's video is cut into ``phases`` equal parts; each is "matched" (mean s of its aligned frames
    at least ``matched``), "poorly matched", or "missing" (below ``missing``, or passed through in a single
    learner frame). The feedback also compares how much, how fast, how high and in which direction each
    video moves, in image coordinates, so the two videos should show the scene from roughly the same side.
    The CLIP model runs on ``device`` (the GPU when there is one).
    """

    def __init__(
        self,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        phases: int = 4,
        tau: float = 0.1,
        matched: float = 0.4,
        missing: float = 0.15,
        motion_threshold: float = 12.0,
        device: str | None = None,
    ):
        if not isinstance(phases, int) or phases < 1:
            raise ValueError(f"phases must be an integer >= 1, got {phases!r}")
        if tau <= 0 or not 0 < missing < matched <= 1:
            raise ValueError(f"need tau > 0 and 0 < missing < matched <= 1, got {tau}, {missing}, {matched}")
        self.clip = ClipModel(model, pretrained, device)
        self.phases, self.tau, self.matched, self.missing = phases, float(tau), float(matched), float(missing)
        self.motion_threshold = float(motion_threshold)
        name = Path(model).name if Path(model).is_dir() else model
        self.source = f"offline:clip-dtw-{name}"

    def compare_videos(self, learner: np.ndarray, expert: np.ndarray, fps: float) -> VideoFeedback:
        """Feedback on ``learner`` against ``expert``, both ``(T, H, W, 3)`` uint8 frames sampled at ``fps``."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        for name, frames in (("learner", learner), ("expert", expert)):
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 2 or frames.dtype != np.uint8:
                raise ValueError(f"{name} video must be at least 2 uint8 frames (T, H, W, 3), got {frames.shape}")
        e_l, e_x = (self.clip.embed_images(np.asarray(v)).numpy() for v in (learner, expert))
        (m_l, a_l), (m_x, a_x) = (motion_track(v, self.motion_threshold) for v in (learner, expert))
        appearance = np.clip(e_l @ e_x.T, 0.0, 1.0)
        eps = 0.2 * a_x.mean() + 1e-9
        amount = (np.minimum(a_l[:, None], a_x[None]) + eps) / (np.maximum(a_l[:, None], a_x[None]) + eps)
        motion = np.exp(-np.linalg.norm(m_l[:, None] - m_x[None], axis=-1) / self.tau) * amount
        match = appearance * motion
        path = dtw(1.0 - match)
        similarity = float(np.mean([match[i, j] for i, j in path]))
        details: dict[str, Any] = {
            "similarity": similarity,
            "appearance": float(np.mean([appearance[i, j] for i, j in path])),
            "motion_match": float(np.mean([motion[i, j] for i, j in path])),
            "final_frame_appearance": float(appearance[-1, -1]),
            "phases": self._phases(path, match, len(expert), fps),
            "learner_motion": _motion_stats(m_l, a_l, fps),
            "expert_motion": _motion_stats(m_x, a_x, fps),
            "fps": fps,
        }
        details["comparison"] = _compare_motion(details["learner_motion"], details["expert_motion"])
        return VideoFeedback(self._text(details), similarity, self.source, details)

    def _phases(self, path: list[tuple[int, int]], match: np.ndarray, n_expert: int, fps: float) -> list[dict]:
        chunks = np.array_split(np.arange(n_expert), min(self.phases, n_expert))
        phases = []
        for k, chunk in enumerate(chunks):
            pairs = [(i, j) for i, j in path if chunk[0] <= j <= chunk[-1]]
            learner_frames = sorted({i for i, _ in pairs})
            phases.append(
                {
                    "phase": k + 1,
                    "expert_seconds": (round(chunk[0] / fps, 2), round((chunk[-1] + 1) / fps, 2)),
                    "learner_seconds": (round(learner_frames[0] / fps, 2), round((learner_frames[-1] + 1) / fps, 2)),
                    "score": float(np.mean([match[i, j] for i, j in pairs])),
                    "collapsed": len(learner_frames) == 1 and len(chunk) >= 3,
                }
            )
        for p in phases:
            if p["score"] < self.missing or p["collapsed"]:
                p["status"] = "missing"
            elif p["score"] < self.matched:
                p["status"] = "poorly matched"
            else:
                p["status"] = "matched"
        return phases

    def _text(self, d: dict[str, Any]) -> str:
        lines = [
            "Offline judge (CLIP image embeddings and frame-difference motion, aligned by dynamic time warping; "
            "not a VLM).",
            f"Similarity to the expert: {d['similarity']:.3f} (1 = the same look and motion; appearance "
            f"{d['appearance']:.3f}, motion match {d['motion_match']:.3f}).",
            f"The expert's video in {len(d['phases'])} phases:",
        ]
        for p in d["phases"]:
            where = (
                "the learner never shows it"
                if p["status"] == "missing"
                else f"the learner at {p['learner_seconds'][0]:g}-{p['learner_seconds'][1]:g} s"
            )
            lines.append(
                f"- phase {p['phase']} ({p['expert_seconds'][0]:g}-{p['expert_seconds'][1]:g} s): {p['status']} "
                f"(score {p['score']:.3f}); {where}"
            )
        c, lm, xm = d["comparison"], d["learner_motion"], d["expert_motion"]
        lines += [
            "Motion, in image coordinates (x to the right, y up, as fractions of the frame):",
            f"- amount: the learner moves {c['amount_ratio']:.2f} times as much as the expert",
            f"- speed: {lm['speed']:.3f} vs {xm['speed']:.3f} frame widths per second ({c['speed']})",
            f"- height: the learner's motion is at y = {lm['height']:.2f}, the expert's at {xm['height']:.2f} "
            f"({c['height']})",
            f"- direction: the learner moves {lm['direction']}, the expert {xm['direction']}",
            f"- end: the learner's motion ends at ({lm['end'][0]:.2f}, {lm['end'][1]:.2f}), "
            f"the expert's at ({xm['end'][0]:.2f}, {xm['end'][1]:.2f})",
            "What should change: " + "; ".join(c["advice"]) + ".",
        ]
        return "\n".join(lines)


def _motion_stats(centres: np.ndarray, energy: np.ndarray, fps: float) -> dict[str, Any]:
    moving = energy > 1e-3
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
    speed = float(steps[moving[1:]].mean() * fps) if moving[1:].any() else 0.0
    where = centres[moving] if moving.any() else centres
    return {
        "amount": float(energy.sum()),
        "speed": speed,
        "height": float(where[:, 1].mean()),
        "start": [round(float(x), 3) for x in where[0]],
        "end": [round(float(x), 3) for x in where[-1]],
        "direction": _direction_words(where[-1] - where[0]),
    }


def _compare_motion(learner: dict[str, Any], expert: dict[str, Any]) -> dict[str, Any]:
    """Ratios and words for how the learner's motion differs from the expert's, and advice from them."""
    amount = learner["amount"] / max(expert["amount"], 1e-9)
    speed = learner["speed"] / max(expert["speed"], 1e-9)
    height = learner["height"] - expert["height"]
    end_gap = float(np.linalg.norm(np.subtract(learner["end"], expert["end"])))
    advice = []
    if amount < 0.5:
        advice.append("the learner barely moves: it should move much more, as the expert does")
    elif amount > 2.0:
        advice.append("the learner moves far more than the expert: its motion should be calmer")
    if speed < 0.67 and amount >= 0.5:
        advice.append("it should move faster")
    elif speed > 1.5:
        advice.append("it should move more slowly and smoothly")
    if abs(height) > 0.1:
        advice.append(f"its motion should happen {'lower' if height > 0 else 'higher'} in the picture")
    if end_gap > 0.15:
        advice.append("it should end where the expert ends")
    return {
        "amount_ratio": amount,
        "speed_ratio": speed,
        "speed": "slower" if speed < 0.67 else "faster" if speed > 1.5 else "about the same",
        "height": "lower" if height < -0.1 else "higher" if height > 0.1 else "about the same",
        "end_gap": end_gap,
        "advice": advice or ["keep the motion as it is"],
    }
