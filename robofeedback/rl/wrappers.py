"""Replacing an env's reward with a reward function: a Gymnasium wrapper and an SB3 VecEnv wrapper."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from robofeedback.data.trajectory import stack_obs
from robofeedback.rewards.base import RewardFunction, Transitions, make_reward


def _copy_obs(obs: Any) -> Any:
    return {k: np.array(v) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs)


class RewardWrapper(gym.Wrapper):
    """Replaces a single env's reward with ``reward_fn``; the env's own reward stays in ``info["env_reward"]``."""

    def __init__(self, env: gym.Env, reward_fn: RewardFunction | Any):
        super().__init__(env)
        self.reward_fn = make_reward(reward_fn)
        self._last_obs: Any = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._last_obs = _copy_obs(obs)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info.setdefault("env_reward", float(reward))
        frames = None
        if self.reward_fn.needs_frames:
            frame = info.pop("frame", None)
            frames = (frame if frame is not None else self.env.render())[None]
        batch = Transitions(
            obs=stack_obs([self._last_obs]),
            action=np.asarray(action)[None],
            next_obs=stack_obs([obs]),
            info=[info],
            frames=frames,
        )
        new_reward = float(self.reward_fn(batch)[0])
        self._last_obs = _copy_obs(obs)
        return obs, new_reward, terminated, truncated, info


class VecRewardWrapper(VecEnvWrapper):
    """Replaces the rewards of all sub-envs of an SB3 VecEnv with one batched ``reward_fn`` call per step.

    Frames are rendered (inside each sub-env, before any auto-reset) only when
    ``reward_fn.needs_frames``. At episode ends the transition uses
    ``info["terminal_observation"]``. Each finished episode's return under
    ``reward_fn`` is put in ``info["episode_model_return"]``.
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFunction | Any):
        super().__init__(venv)
        self.reward_fn = make_reward(reward_fn)
        self._set_frame_capture(self.reward_fn.needs_frames)
        self._last_obs: Any = None
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)

    def reset(self):
        obs = self.venv.reset()
        self._last_obs = _copy_obs(obs)
        self._returns[:] = 0.0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, env_rewards, dones, infos = self.venv.step_wait()
        next_obs = _copy_obs(obs)
        for i in np.flatnonzero(dones):
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                if isinstance(next_obs, dict):
                    for k in next_obs:
                        next_obs[k][i] = terminal[k]
                else:
                    next_obs[i] = terminal
        for i, info in enumerate(infos):
            info.setdefault("env_reward", float(env_rewards[i]))
        frames = None
        if self.reward_fn.needs_frames:
            frames = np.stack([info.pop("frame") for info in infos])
        batch = Transitions(
            obs=self._last_obs, action=self._actions, next_obs=next_obs, info=list(infos), frames=frames
        )
        rewards = self.reward_fn(batch)
        self._returns += rewards
        for i in np.flatnonzero(dones):
            infos[i]["episode_model_return"] = float(self._returns[i])
            self._returns[i] = 0.0
        self._last_obs = _copy_obs(obs)
        return obs, rewards, dones, infos

    def set_reward_fn(self, reward_fn: RewardFunction | Any) -> None:
        """Swap the reward function (e.g. after a learned reward is retrained); frame capture follows its needs."""
        self.reward_fn = make_reward(reward_fn)
        self._set_frame_capture(self.reward_fn.needs_frames)

    def _set_frame_capture(self, enabled: bool) -> None:
        try:
            self.venv.env_method("set_frame_capture", enabled)
        except AttributeError:
            if enabled:
                raise TypeError(
                    f"{type(self.reward_fn).__name__} needs frames, which VecRewardWrapper renders inside each "
                    "sub-env before auto-reset: make the sub-envs with robofeedback.envs.make"
                ) from None
