"""ICPL's bench section: its suite entries (the loop with the offline factor-weight proposer or a hand-written
replay, with the scripted ranker), and its table in the suite's report.

``robofeedback bench --suite icpl`` runs the study of ``configs/bench/suites/icpl.yaml``: the best candidate's
success per iteration on panda reach and MetaWorld drawer-close, for the offline proposer and for the whole LLM
loop served hand-written answers. The replays (``assets/icpl/<task>.jsonl``, written by
``scripts/write_icpl_replays.py``) are answers written by hand to read like a code LLM's and served whatever the
prompt says, for a reproducible run of the loop's machinery without a server; they measure no model. A live model
runs the same loop with ``robofeedback icpl --llm ...``. Each ranking of K candidates counts as K - 1 pairwise
preferences, the unit the preference core's label budget is counted in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3 import SAC

from robofeedback.config import assets_dir
from robofeedback.feedback.llm import Replay
from robofeedback.methods.bench import FACTOR_NOTE, Entry, EntryError, expert_similarity, measure_code, task_text
from robofeedback.methods.icpl.model import ICPL
from robofeedback.parallel import Executor

PROPOSERS = ("offline", "replay")


@dataclass(frozen=True, kw_only=True)
class ICPLEntry(Entry):
    """What an ``icpl`` suite entry may say: the loop's size, its proposer, and whether to score each iteration's
    best policy against the task's shipped expert video."""

    steps: int = field()  # env steps per candidate; required (a bare annotation would inherit the default 0)
    text: str | None = None  # the task in words (default: the task's known text)
    proposer: str = "offline"  # "offline" (factor weights) or "replay" (hand-written answers of assets/icpl)
    replay: str | None = None  # whose replay to serve (default: the entry's task)
    iterations: int = 2
    candidates: int = 2
    expert_video: bool = False  # score each iteration's best policy against assets/videos/<task>-expert.mp4
    fps: float = 20.0  # the frame rate both videos are compared at

    def __post_init__(self) -> None:
        if self.proposer not in PROPOSERS:
            raise EntryError(f"icpl entry: proposer must be one of {', '.join(PROPOSERS)}, got {self.proposer!r}")


def replay_path(task: str) -> Path:
    """The hand-written replay of ``task`` (``assets/icpl/<task>.jsonl``)."""
    return assets_dir() / "icpl" / f"{task.replace(':', '-')}.jsonl"


def video_similarity(settings: ICPLEntry, summary: dict[str, Any], folder: Path) -> list[float]:
    """Each iteration's best candidate scored against the task's expert video (:func:`expert_similarity`)."""
    policies = []
    for it in summary["iterations"]:
        iteration, cand = it["best"].removeprefix("iter").split("-cand")
        policies.append(
            SAC.load(folder / f"iter{iteration}" / f"cand{cand}" / "checkpoints" / "model.zip", device="cpu")
        )
    return expert_similarity(dataclasses.asdict(settings), policies, settings.fps)


def run_entry(entry: dict[str, Any], folder: Path, executor: Executor) -> dict[str, Any]:
    """``iterations`` rounds of ``candidates`` reward functions, each trained for ``steps``; the proposer is the
    offline one, or with ``proposer: replay`` the hand-written answers of the entry's task (or of ``replay:``).
    With ``expert_video: true`` the row also holds each iteration's best policy's similarity to the expert."""
    settings = ICPLEntry.from_dict(entry)
    text = task_text(dataclasses.asdict(settings))
    proposer = Replay(replay_path(settings.replay or settings.task)) if settings.proposer == "replay" else None
    candidates, steps = settings.candidates, settings.steps
    loop = ICPL(
        settings.task,
        text,
        proposer=proposer,
        iterations=settings.iterations,
        candidates=candidates,
        train_steps=steps,
        config=settings.config,
        executor=executor,
        out_dir=folder,
        seed=settings.seed,
    )
    summary = loop.run()
    curve = [
        {
            "steps": (i + 1) * candidates * steps,
            "labels": it["pairwise_preferences"],
            "success_rate": it["best_success_rate"],
            "mean_env_return": it["best_env_return"],
        }
        for i, it in enumerate(summary["iterations"])
    ]
    row = {
        "steps": curve[-1]["steps"],
        "labels": curve[-1]["labels"],
        "success_rate": summary["best"]["success_rate"],
        "mean_env_return": summary["best"]["mean_env_return"],
        "proposer": summary["proposer"],
        "curve": curve,
    }
    if settings.expert_video:
        row["similarity"] = video_similarity(settings, summary, folder)
    iteration, cand = summary["best"]["name"].removeprefix("iter").split("-cand")
    policy = folder / f"iter{iteration}" / f"cand{cand}" / "checkpoints" / "model.zip"
    row["reward_metrics"] = measure_code(entry, summary["best"]["code"], policy)  # the best candidate's reward
    return row


def _values(xs: list, digits: int = 2) -> str:
    return ", ".join("-" if x is None else f"{x:.{digits}f}" for x in xs)


def report(rows: list[dict[str, Any]]) -> list[str]:
    """ICPL's section of the suite's report: what its rows mean, and the best candidate per iteration."""
    video = any("similarity" in r for r in rows)
    lines = [
        "## ICPL",
        "",
        "Scripted ranker (success, then env return, of each candidate's final policy on the evaluation episodes). "
        "ICPL's env steps count every policy it trained; its labels are its rankings counted as pairwise "
        "preferences. " + FACTOR_NOTE,
        "",
        "| task | proposer | seed | K | steps per candidate | best success per iteration "
        + ("| similarity to the expert video per iteration " if video else "")
        + "| pairwise preferences | wall time s |",
        "|---|---|---|---|---|---|" + ("---|" if video else "") + "---|---|",
    ]
    for r in rows:
        config = r["config"]
        similarity = f"| {_values(r['similarity'], 3) if 'similarity' in r else '-'} " if video else ""
        lines.append(
            f"| {r['task']} | {r['proposer']} | {r['seed']} | {config.get('candidates', 2)} | {config['steps']} "
            f"| {_values([c['success_rate'] for c in r['curve']])} {similarity}| {r['labels']} "
            f"| {r['wall_time_s']} |"
        )
    return [*lines, ""]
