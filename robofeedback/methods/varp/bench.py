"""VARP's bench entries: a CLIP judge's preferences and the agent-regularized reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.config import deep_merge
from robofeedback.feedback.vlm import ClipJudge
from robofeedback.methods.bench import prompts, train_entry, with_budget


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on the labels of a CLIP judge with the entry's ``goal``/``baseline`` prompts (``alpha``, default 1),
    ``budget`` labels, and agent regularization ``lambda`` (default 0.1)."""
    goal, baseline = prompts(entry)
    judge = ClipJudge(goal, baseline, alpha=entry.get("alpha", 1.0))
    config = deep_merge(with_budget(entry), {"preference": {"agent_reg": entry.get("lambda", 0.1)}})
    return train_entry(entry, folder, "varp", judge, config)
