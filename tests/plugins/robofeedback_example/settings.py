"""The goal_distance method's settings, typed: one dataclass given in code, and its bench-suite entry."""

from __future__ import annotations

import math
from dataclasses import dataclass

from robofeedback.methods.bench import Entry


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


@dataclass(frozen=True)
class GoalDistanceEntry(Entry, GoalDistanceSettings):
    """A goal_distance suite entry: the suite's keys (:class:`Entry`) and the settings; ``from_dict`` names any
    key it does not know."""
