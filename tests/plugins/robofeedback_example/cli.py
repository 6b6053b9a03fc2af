"""The goal_distance method's flags of ``robofeedback train --reward goal_distance``."""

from __future__ import annotations

import argparse

from robofeedback_example.reward import GoalDistanceReward
from robofeedback_example.settings import GoalDistanceSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The method's flags, in a group of their own."""
    group = parser.add_argument_group("goal distance (--reward goal_distance)")
    group.add_argument(
        "--distance-factor", default="ee_to_target", help="the env's factor that is the distance to the goal"
    )
    group.add_argument("--action-cost", type=float, default=0.0, help="weight c of the penalty c ||a||^2")


def from_args(args: argparse.Namespace) -> tuple[GoalDistanceReward, None, dict]:
    """The reward the flags describe; it learns from no feedback and changes no train setting."""
    settings = GoalDistanceSettings(distance=args.distance_factor, action_cost=args.action_cost)
    return GoalDistanceReward(settings), None, {}
