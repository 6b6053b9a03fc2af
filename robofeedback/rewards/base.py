"""The reward-function contract every reward module keeps, and the first two implementations.

A reward function scores a batch of transitions at once and returns a float32
array; it says whether it needs rendered frames (``needs_frames``), so that
wrappers render only when something will look at the pixels. Learned reward
functions also have ``update(feedback)``. Reward functions are picklable and
never touch the env. A costly one may ask the wrappers to score only some steps:
every ``reward_every``-th step of an episode (holding the last score between), or
only an episode's last step (``reward_at_episode_end``; 0 elsewhere); frames are
then rendered only on the steps that are scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Obs = np.ndarray | dict[str, np.ndarray]


@dataclass
class Transitions:
    """A batch of N transitions: ``obs`` / ``next_obs`` stacked along the first axis (arrays, or dicts of arrays
    for dict observation spaces), ``action`` ``(N, ...)``, ``info`` a list of N info dicts, and ``frames``
    ``(N, H, W, 3)`` uint8 renders of ``next_obs`` when the reward function asked for them."""

    obs: Obs
    action: np.ndarray
    next_obs: Obs
    info: list[dict]
    frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, rows: np.ndarray) -> Transitions:
        """The transitions at the indices ``rows``, as a batch."""
        pick = (lambda o: {k: v[rows] for k, v in o.items()}) if isinstance(self.obs, dict) else (lambda o: o[rows])
        frames = None if self.frames is None else self.frames[rows]
        info = [self.info[i] for i in rows]
        return Transitions(pick(self.obs), self.action[rows], pick(self.next_obs), info, frames)

    def row(self, i: int) -> tuple[Any, np.ndarray, Any, dict]:
        """The i-th transition as ``(obs, action, next_obs, info)``."""
        pick = (lambda o: {k: v[i] for k, v in o.items()}) if isinstance(self.obs, dict) else (lambda o: o[i])
        return pick(self.obs), self.action[i], pick(self.next_obs), self.info[i]


class RewardFunction:
    """Base class of reward functions: subclasses implement ``reward(batch) -> np.ndarray[float32]``."""

    needs_frames: bool = False
    reward_every: int = 1
    reward_at_episode_end: bool = False

    def reward(self, batch: Transitions) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement reward()")

    def __call__(self, batch: Transitions) -> np.ndarray:
        out = np.asarray(self.reward(batch), dtype=np.float32).reshape(-1)
        if len(out) != len(batch):
            raise ValueError(f"{type(self).__name__}.reward returned {len(out)} rewards for {len(batch)} transitions")
        return out


class EnvReward(RewardFunction):
    """The env's own reward, read from ``info["env_reward"]`` (the ground truth; for baselines and evaluation)."""

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
    """``"env"`` or ``None`` -> :class:`EnvReward`; a callable -> :class:`FnReward`; a RewardFunction -> itself."""
    if reward is None or reward == "env":
        return EnvReward()
    if isinstance(reward, RewardFunction):
        return reward
    if isinstance(reward, str):
        raise ValueError(f"unknown reward {reward!r}; the built-in choice is 'env' (more come with the reward modules)")
    if callable(reward):
        return FnReward(reward)
    raise TypeError(f"reward must be 'env', a RewardFunction or a callable, got {type(reward).__name__}")
