"""ICPL's bench entries: the loop with the offline proposer or a hand-written replay, candidates trained in turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.bench.common import FACTOR_NOTE
from robofeedback.bench.icpl import replay_path
from robofeedback.feedback.llm import Replay
from robofeedback.methods.bench import task_text
from robofeedback.rewards.icpl import ICPL


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """``iterations`` rounds of ``candidates`` reward functions, each trained for ``steps``; the proposer is the
    offline one, or with ``proposer: replay`` the hand-written answers of the entry's task (or of ``replay:``)."""
    proposer = None
    if entry.get("proposer", "offline") == "replay":
        proposer = Replay(replay_path(entry.get("replay", entry["task"])))
    candidates, steps = entry.get("candidates", 2), entry["steps"]
    loop = ICPL(
        entry["task"],
        task_text(entry),
        proposer=proposer,
        iterations=entry.get("iterations", 2),
        candidates=candidates,
        train_steps=steps,
        config=entry["config"],
        executor=executor,
        out_dir=folder,
        seed=entry["seed"],
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
    return {
        "steps": curve[-1]["steps"],
        "labels": curve[-1]["labels"],
        "success_rate": summary["best"]["success_rate"],
        "mean_env_return": summary["best"]["mean_env_return"],
        "proposer": summary["proposer"],
        "curve": curve,
    }


def report(rows: list[dict[str, Any]]) -> list[str]:
    """What ICPL's rows in the reward-learning table mean."""
    return [
        "ICPL's env steps count every policy it trained; its labels are its rankings counted as pairwise "
        "preferences. " + FACTOR_NOTE,
        "",
    ]
