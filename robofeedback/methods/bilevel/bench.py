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
from robofeedback.methods.bench import FACTOR_NOTE, Entry, EntryError, expert_video, task_text
from robofeedback.methods.bilevel.model import BilevelVideoReward
from robofeedback.parallel import Executor

UPDATERS = ("offline", "replay")


@dataclass(frozen=True, kw_only=True)
class BilevelEntry(Entry):
    """What a ``bilevel`` suite entry may say: the loop's size, its lower level and the frame rate the videos are
    compared at."""

    steps: int = field()  # env steps per policy; required (a bare annotation would inherit the default 0)
    text: str | None = None  # the task in words (default: the task's known text)
    updater: str = "offline"  # "offline" (factor weights) or "replay" (hand-written answers of assets/bilevel)
    iterations: int = 2
    fps: float = 20.0

    def __post_init__(self) -> None:
        if self.updater not in UPDATERS:
            raise EntryError(f"bilevel entry: updater must be one of {', '.join(UPDATERS)}, got {self.updater!r}")


def run_entry(entry: dict[str, Any], folder: Path, executor: Executor) -> dict[str, Any]:
    """``iterations`` rounds, each training a policy for ``steps``; ``updater: replay`` serves the hand-written
    lower level of ``assets/bilevel``."""
    settings = BilevelEntry.from_dict(entry)
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
    return {
        "steps": curve[-1]["steps"],
        "success_rate": last["success_rate"],
        "mean_env_return": last["mean_env_return"],
        "similarity": [it["similarity"] for it in summary["iterations"]],
        "judge": summary["judge"],
        "lower_level": summary["updater"],
        "curve": curve,
    }


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
        + FACTOR_NOTE,
        "",
        "| task | judge | lower level | seed | policies x steps | similarity per iteration | success per iteration "
        "| wall time s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['judge']} | {r['lower_level']} | {r['seed']} "
            f"| {len(r['similarity'])} x {r['config']['steps']} | {_values(r['similarity'], 3)} "
            f"| {_values([c['success_rate'] for c in r['curve']])} | {r['wall_time_s']} |"
        )
    return [*lines, ""]
