"""The goal_distance method's settings, typed: one dataclass, read from a bench-suite entry or given in code."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from robofeedback.methods.bench import EntryError

SUITE_KEYS = ("method", "task", "seed", "steps", "algo", "config", "name")


@dataclass(frozen=True)
class GoalDistanceSettings:
    """Which env factor is the distance to the goal (``distance``), and the weight of the action penalty
    (``action_cost``, c in r = -d - c ||a||^2)."""

    distance: str = "ee_to_target"
    action_cost: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.distance, str) or not self.distance:
            raise ValueError(f"distance must name one of the env's reward factors, got {self.distance!r}")
        cost = self.action_cost
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
            raise ValueError(f"action_cost must be a finite number >= 0, got {self.action_cost!r}")

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> GoalDistanceSettings:
        """The settings of a suite entry: its keys besides the suite's own; an unknown key is an error naming it."""
        own = {key: value for key, value in entry.items() if key not in SUITE_KEYS}
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(own) - set(known))
        if unknown:
            raise EntryError(f"goal_distance entries take {', '.join(known)}; unknown keys: {', '.join(unknown)}")
        return cls(**own)
