"""PEBBLE's flags of ``robofeedback train --reward preference``: none of its own; the teacher flags say who labels."""

from __future__ import annotations

import argparse

from robofeedback.methods.arguments import teacher_from_args
from robofeedback.protocols import FeedbackSource


def from_args(args: argparse.Namespace) -> tuple[str, FeedbackSource, dict]:
    """PEBBLE's reward and who labels for it."""
    return "preference", teacher_from_args(args), {}
