"""The goal_distance method's bench entries: SAC on the shaped reward, and its section of the suite's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.methods.bench import train_entry
from robofeedback_example.reward import GoalDistanceReward
from robofeedback_example.settings import GoalDistanceEntry


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on the entry's goal-distance reward (``distance``, ``action_cost``); the row adds the settings."""
    settings = GoalDistanceEntry.from_dict(entry)
    row = train_entry(entry, folder, GoalDistanceReward(settings))
    return {**row, "distance": settings.distance, "action_cost": settings.action_cost}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The method's section of the suite's report: the reward each row trained on."""
    lines = ["## Goal distance (example method)", ""]
    lines += [
        f"- {r['task']} seed {r['seed']}: r = -{r['distance']} - {r['action_cost']} ||a||^2, "
        f"success {r['success_rate']}"
        for r in rows
    ]
    return [*lines, ""]
