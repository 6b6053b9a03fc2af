"""PEBBLE's bench entries: preferences from a scripted teacher at a label budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.feedback.teachers import make_teacher
from robofeedback.methods.bench import train_entry, with_budget


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on preferences from the entry's ``teacher`` (default the Oracle, with ``teacher_params``), ``budget``
    labels over ``rounds`` rounds."""
    teacher = make_teacher(entry.get("teacher", "oracle"), seed=entry["seed"], **entry.get("teacher_params", {}))
    return train_entry(entry, folder, "preference", teacher, with_budget(entry))
