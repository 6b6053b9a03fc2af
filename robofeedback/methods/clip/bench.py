"""VLM-RM's bench entries: SAC on the CLIP reward of the entry's goal and baseline prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.methods.bench import prompts, train_entry
from robofeedback.methods.clip.model import ClipReward


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on the CLIP reward of the entry's ``goal`` and ``baseline`` prompts (``alpha`` 0.5, ``scale`` 10 by
    default)."""
    goal, baseline = prompts(entry)
    reward = ClipReward(goal, baseline, alpha=entry.get("alpha", 0.5), scale=entry.get("scale", 10.0))
    return {**train_entry(entry, folder, reward), "goal": goal, "baseline": baseline}
