"""The bi-level loop's bench entries: the expert video of the task from ``assets/videos``, the offline lower level
or a hand-written replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.bench.common import FACTOR_NOTE
from robofeedback.config import assets_dir
from robofeedback.feedback.llm import Replay
from robofeedback.methods.bench import task_text
from robofeedback.rewards.bilevel import BilevelVideoReward


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """``iterations`` rounds, each training a policy for ``steps``; ``updater: replay`` serves the hand-written
    lower level of ``assets/bilevel``."""
    name = entry["task"].replace(":", "-")
    llm = Replay(assets_dir() / "bilevel" / f"{name}.jsonl") if entry.get("updater", "offline") == "replay" else None
    steps = entry["steps"]
    loop = BilevelVideoReward(
        entry["task"],
        assets_dir() / "videos" / f"{name}-expert.mp4",
        task_text(entry),
        llm=llm,
        train_steps=steps,
        config=entry["config"],
        out_dir=folder,
        seed=entry["seed"],
        fps=entry.get("fps", 20.0),
    )
    summary = loop.run(entry.get("iterations", 2))
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


def report(rows: list[dict[str, Any]]) -> list[str]:
    """What the bi-level rows in the reward-learning table mean."""
    return ["The bi-level loop's env steps count every policy it trained. " + FACTOR_NOTE, ""]
