"""The bi-level loop's bench section: its suite entries (the expert video of the task from ``assets/videos``, the
offline lower level or a hand-written replay), and its table in the suite's report.

``robofeedback bench --suite bilevel`` runs the study of ``configs/bench/suites/bilevel.yaml`` on MetaWorld
drawer-close with the shipped expert video (made by ``scripts/make_expert_video.py``):

- the offline path: the CLIP + time-warping judge and the factor-weight lower level (no model anywhere);
- the LLM path: the same judge, and the lower level's answers served from ``assets/bilevel`` (a hand-written
  replay, not a model: written by ``scripts/write_bilevel_replays.py`` to read like a code model's and served
  whatever the feedback says; a live model runs the same loop with ``robofeedback video-reward --llm ...``);
- next to them, an ``icpl`` entry with the offline proposer and the scripted ranker, the same number of iterations
  with two candidates each (so twice the env steps), which sees the task's success instead of a video; with
  ``expert_video: true`` its best candidate per iteration is rendered on the same episode and scored by the same
  judge, in ICPL's section of the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robofeedback.config import assets_dir
from robofeedback.feedback.llm import Replay
from robofeedback.feedback.vlm import ClipVideoJudge
from robofeedback.methods.bench import (
    FACTOR_NOTE,
    Entry,
    EntryError,
    expert_similarity,
    expert_video,
    measure_code,
    task_text,
    trained,
)
from robofeedback.methods.bilevel.model import BilevelVideoReward, ExpertFrameReward
from robofeedback.parallel import Executor

UPDATERS = ("offline", "replay", "vlm-only")


@dataclass(frozen=True, kw_only=True)
class BilevelEntry(Entry):
    """What a ``bilevel`` suite entry may say: the loop's size, its lower level and the frame rate the videos are
    compared at."""

    steps: int = field()  # env steps per policy; required (a bare annotation would inherit the default 0)
    text: str | None = None  # the task in words (default: the task's known text)
    # "offline" (factor weights), "replay" (hand-written answers of assets/bilevel), or "vlm-only" (the paper's
    # VLM-only arm: no lower level, the judge's image model as the reward; ExpertFrameReward)
    updater: str = "offline"
    iterations: int = 2
    fps: float = 20.0

    def __post_init__(self) -> None:
        if self.updater not in UPDATERS:
            raise EntryError(f"bilevel entry: updater must be one of {', '.join(UPDATERS)}, got {self.updater!r}")


def run_entry(entry: dict[str, Any], folder: Path, executor: Executor) -> dict[str, Any]:
    """``iterations`` rounds, each training a policy for ``steps``; ``updater: replay`` serves the hand-written
    lower level of ``assets/bilevel``; ``updater: vlm-only`` trains one policy for ``iterations`` x ``steps`` on
    the judge's image model alone."""
    settings = BilevelEntry.from_dict(entry)
    if settings.updater == "vlm-only":
        return vlm_only(settings, entry, folder)
    text = task_text(dataclasses.asdict(settings))
    name = settings.task.replace(":", "-")
    llm = Replay(assets_dir() / "bilevel" / f"{name}.jsonl") if settings.updater == "replay" else None
    steps = settings.steps
    loop = BilevelVideoReward(
        settings.task,
        expert_video(settings.task),
        text,
        llm=llm,
        train_steps=steps,
        config=settings.config,
        out_dir=folder,
        seed=settings.seed,
        fps=settings.fps,
    )
    summary = loop.run(settings.iterations)
    curve = [
        {"steps": (i + 1) * steps, "success_rate": it["success_rate"], "mean_env_return": it["mean_env_return"]}
        for i, it in enumerate(summary["iterations"])
    ]
    last = summary["iterations"][-1]
    final = folder / f"iter{len(curve) - 1}"  # the last iteration's reward code and policy, as the row reports
    metrics = measure_code(entry, (final / "code.py").read_text(), final / "train" / "checkpoints" / "model.zip")
    return {
        "reward_metrics": metrics,
        "steps": curve[-1]["steps"],
        "success_rate": last["success_rate"],
        "mean_env_return": last["mean_env_return"],
        "similarity": [it["similarity"] for it in summary["iterations"]],
        "judge": summary["judge"],
        "lower_level": summary["updater"],
        "curve": curve,
    }


def vlm_only(settings: BilevelEntry, entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    """SAC on :class:`ExpertFrameReward` for as many env steps as the loop's policies together; the judge scores the
    final policy's ``judged`` episode as it scores the loop's."""
    steps = settings.iterations * settings.steps
    reward = ExpertFrameReward(expert_video(settings.task), settings.fps)
    result, row = trained({**entry, "steps": steps}, folder, reward)
    similarity = expert_similarity(entry, [result.model], settings.fps)
    return {**row, "similarity": similarity, "judge": ClipVideoJudge().source, "lower_level": "none (VLM only)"}


def _values(xs: list, digits: int = 2) -> str:
    return ", ".join("-" if x is None else f"{x:.{digits}f}" for x in xs)


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The bi-level loop's section of the suite's report: similarity to the expert and success per iteration."""
    lines = [
        "## Bi-level reward learning from an expert video",
        "",
        "Each task's expert video (`assets/videos/<task>-expert.mp4`: a scripted expert, another camera, other "
        "colours), compared at the entry's fps. Success and return are the task's own, on the evaluation episodes "
        "after each policy's training; the similarity is the judge's on one rendered episode (the run's `judged` "
        "random stream, the same every iteration). The bi-level loop's env steps count every policy it trained. "
        + FACTOR_NOTE
        + " The paper's claim is that the VLM + LLM loop beats the VLM alone; the VLM-only arm here is one policy on "
        "the judge's image model as the reward (cosine to the expert's last frames), for the loop's env steps.",
        "",
        "| task | judge | lower level | seed | policies x steps | similarity per iteration | success per iteration "
        "| wall time s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loop = len(r["similarity"]) == len(r["curve"])  # the VLM-only arm's curve is its evaluations
        success = [c["success_rate"] for c in r["curve"]] if loop else [r["success_rate"]]
        lines.append(
            f"| {r['task']} | {r['judge']} | {r['lower_level']} | {r['seed']} "
            f"| {len(r['similarity'])} x {r['steps'] // len(r['similarity'])} | {_values(r['similarity'], 3)} "
            f"| {_values(success)} | {r['wall_time_s']} |"
        )
    return [*lines, ""]
