"""HERON's bench entries: a factor ranking with its margins, labels from the hierarchy's decision tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.methods.bench import train_entry, with_budget
from robofeedback.rewards.heron import HierarchicalJudge


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on the labels of the entry's ``factors`` ranking (most important first) with margins ``sigma``; a
    ``budget`` is optional (HERON labels every round's pairs by default)."""
    judge = HierarchicalJudge(entry["factors"], sigma=entry["sigma"])
    row = train_entry(entry, folder, "heron", judge, with_budget(entry) if "budget" in entry else None)
    return {**row, "levels": judge.level_fractions()}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """HERON's comparisons in the suite's report: the share decided at each level of the factor ranking."""
    lines = ["HERON's comparisons, share decided at each level of the factor ranking:", ""]
    lines += [
        f"- {r['task']} seed {r['seed']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["levels"].items())
        for r in rows
        if r.get("levels")
    ]
    return [*lines, ""]
