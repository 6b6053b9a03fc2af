"""The first reward functions: the env's own reward and a plain Python callable.

The contract they keep is :class:`robofeedback.protocols.RewardFunction`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robofeedback.protocols import RewardFunction, Transitions


class EnvReward(RewardFunction):
    """The env's own reward, read from ``info["env_reward"]`` (the ground truth; for baselines and evaluation).

    >>> infos = [{"env_reward": 1.0}, {"env_reward": -0.5}]
    >>> EnvReward()(Transitions(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((2, 3)), infos))
    array([ 1. , -0.5], dtype=float32)
    """

    def reward(self, batch: Transitions) -> np.ndarray:
        try:
            return np.array([info["env_reward"] for info in batch.info], dtype=np.float32)
        except KeyError:
            raise KeyError("EnvReward needs info['env_reward']: make the env with robofeedback.envs.make") from None


class FnReward(RewardFunction):
    """A plain Python callable as a reward function.

    With ``batched=False`` (default) ``fn(obs, action, next_obs, info) -> float``
    is called per transition; with ``batched=True`` ``fn(batch) -> array`` is
    called once. Pass a module-level function (not a lambda) to keep it picklable.

    >>> def height(obs, action, next_obs, info):
    ...     return next_obs[0]
    >>> batch = Transitions(np.zeros((2, 3)), np.zeros((2, 1)), np.array([[0.5, 0, 0], [2.0, 0, 0]]), [{}, {}])
    >>> FnReward(height)(batch)
    array([0.5, 2. ], dtype=float32)
    >>> FnReward(lambda batch: batch.next_obs[:, 0] * 2, batched=True)(batch)
    array([1., 4.], dtype=float32)
    """

    def __init__(self, fn: Callable, batched: bool = False, needs_frames: bool = False):
        if not callable(fn):
            raise TypeError(f"FnReward needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.batched = batched
        self.needs_frames = needs_frames

    def reward(self, batch: Transitions) -> np.ndarray:
        if self.batched:
            return np.asarray(self.fn(batch), dtype=np.float32)
        return np.array([self.fn(*batch.row(i)) for i in range(len(batch))], dtype=np.float32)


def make_reward(reward: str | RewardFunction | Callable | None) -> RewardFunction:
    """``"env"`` or ``None`` -> :class:`EnvReward`; a callable -> :class:`FnReward`; a RewardFunction -> itself.

    >>> make_reward("env")
    <robofeedback.rewards.base.EnvReward object at 0x...>
    >>> make_reward(lambda obs, action, next_obs, info: 1.0)
    <robofeedback.rewards.base.FnReward object at 0x...>
    """
    if reward is None or reward == "env":
        return EnvReward()
    if isinstance(reward, RewardFunction):
        return reward
    if isinstance(reward, str):
        raise ValueError(f"unknown reward {reward!r}; the built-in choice is 'env' (more come with the reward modules)")
    if callable(reward):
        return FnReward(reward)
    raise TypeError(f"reward must be 'env', a RewardFunction or a callable, got {type(reward).__name__}")
