"""The goal_distance reward function: minus the env's distance factor, minus c ||a||^2."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robofeedback.protocols import RewardFunction, Transitions
from robofeedback_example.settings import GoalDistanceSettings


class GoalDistanceReward(RewardFunction):
    """r(s, a, s') = -d(s') - c ||a||^2, with d the env's factor ``settings.distance`` (read from each step's
    ``info["factors"]``) and c ``settings.action_cost``."""

    def __init__(self, settings: GoalDistanceSettings | None = None):
        self.settings = settings or GoalDistanceSettings()

    def reward(self, batch: Transitions) -> np.ndarray:
        d = np.array([info["factors"][self.settings.distance] for info in batch.info], dtype=np.float64)
        squared_action = np.square(batch.action.reshape(len(batch), -1)).sum(axis=1)
        return -d - self.settings.action_cost * squared_action


def build(env: gym.Env, cfg, seed: int, settings: GoalDistanceSettings | None = None) -> GoalDistanceReward:
    """The reward for ``env`` (``train(reward="goal_distance")``); the distance must be one of its factors."""
    settings = settings or GoalDistanceSettings()
    factors = getattr(env, "factor_info", {})
    if settings.distance not in factors:
        raise ValueError(
            f"goal_distance reads the env's factor {settings.distance!r}, which "
            f"{getattr(env, 'spec_name', env)} does not report; its factors are {', '.join(factors) or 'none'}"
        )
    return GoalDistanceReward(settings)
