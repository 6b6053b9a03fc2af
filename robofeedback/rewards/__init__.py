"""Reward modules: one file per method, all keeping the RewardFunction contract of ``rewards.base``."""

from robofeedback.protocols import RewardFunction, Transitions
from robofeedback.rewards.base import EnvReward, FnReward, make_reward

__all__ = ["RewardFunction", "Transitions", "EnvReward", "FnReward", "make_reward"]
