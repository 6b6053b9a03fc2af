"""Replacing an env's reward with a reward function: a Gymnasium wrapper and an SB3 VecEnv wrapper."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from robofeedback.data.recorder import RolloutRecorder
from robofeedback.data.trajectory import stack_obs
from robofeedback.envs.base import scheduled
from robofeedback.protocols import RewardFunction, Transitions
from robofeedback.rewards.base import make_reward


def _copy_obs(obs: Any) -> Any:
    return {k: np.array(v) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs)


class RewardWrapper(gym.Wrapper):
    """Replaces a single env's reward with ``reward_fn``; the env's own reward stays in ``info["env_reward"]``.

    A reward function that scores only some steps (``reward_every``, ``reward_at_episode_end``) is called,
    and the env rendered for it, only on those steps.

    >>> def upright(obs, action, next_obs, info):  # Pendulum's cos(theta)
    ...     return next_obs[0]
    >>> env = RewardWrapper(gym.make("Pendulum-v1"), upright)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
    >>> reward == float(obs[0]), round(info["env_reward"], 3)
    (True, -0.762)
    >>> env.close()
    """

    def __init__(self, env: gym.Env, reward_fn: RewardFunction | Any):
        super().__init__(env)
        self.reward_fn = make_reward(reward_fn)
        self._last_obs: Any = None
        self._step = 0
        self._held = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._last_obs = _copy_obs(obs)
        self._step, self._held = 0, 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info.setdefault("env_reward", float(reward))
        frame = info.pop("frame", None)
        self._step += 1
        if _due(self.reward_fn, np.array([self._step]), np.array([terminated or truncated]))[0]:
            frames = None
            if self.reward_fn.needs_frames:
                frames = (frame if frame is not None else self.env.render())[None]
            batch = Transitions(
                obs=stack_obs([self._last_obs]),
                action=np.asarray(action)[None],
                next_obs=stack_obs([obs]),
                info=[info],
                frames=frames,
            )
            self._held = float(self.reward_fn(batch)[0])
        new_reward = self._held
        if self.reward_fn.reward_at_episode_end:
            self._held = 0.0
        self._last_obs = _copy_obs(obs)
        return obs, new_reward, terminated, truncated, info


def _due(reward_fn: RewardFunction, steps: np.ndarray, dones: np.ndarray) -> np.ndarray:
    """Which transitions ``reward_fn`` scores, given each env's step count in its episode (1 for the first step)."""
    return scheduled(steps, dones, reward_fn.reward_every, reward_fn.reward_at_episode_end)


class VecRewardWrapper(VecEnvWrapper):
    """Replaces the rewards of all sub-envs of an SB3 VecEnv with one batched ``reward_fn`` call per step.

    Frames are rendered (inside each sub-env, before any auto-reset) only when
    ``reward_fn.needs_frames`` or an attached recorder keeps them, and (unless the recorder keeps them)
    only on the steps a sparse reward function scores; the other steps get the held score (or 0 before an
    episode's end with ``reward_at_episode_end``). At episode ends the transition uses
    ``info["terminal_observation"]``. Each finished episode's return under
    ``reward_fn`` is put in ``info["episode_model_return"]``. An attached
    :class:`~robofeedback.data.recorder.RolloutRecorder` is fed every step; one that keeps the frames of only
    every k-th episode gets them rendered in those episodes only (per sub-env, when ``reward_fn`` needs none); one
    that keeps simulator states gets them in every step's info (none rendered).
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFunction | Any):
        super().__init__(venv)
        self.reward_fn = make_reward(reward_fn)
        self.recorder: RolloutRecorder | None = None
        self._set_frame_capture(self.reward_fn.needs_frames)
        self._last_obs: Any = None
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._held = np.zeros(self.num_envs, dtype=np.float32)

    def reset(self):
        obs = self.venv.reset()
        self._last_obs = _copy_obs(obs)
        self._returns[:] = 0.0
        self._steps[:] = 0
        self._held[:] = 0.0
        if self.recorder is not None:
            self.recorder.start(obs, self._reset_infos())
        return obs

    def _reset_infos(self) -> list[dict]:
        infos = getattr(self.venv, "reset_infos", None)
        return list(infos) if infos is not None else [{} for _ in range(self.num_envs)]

    def attach_recorder(self, recorder: RolloutRecorder) -> None:
        """Record every step from now on (from the current observations, if the env was already reset)."""
        self.recorder = recorder
        if recorder.keep_states:
            self.venv.env_method("set_state_capture", True)
        if self._last_obs is not None:
            infos = self._reset_infos()
            if recorder.keep_frames:  # the sub-envs are past their reset: render where they are now
                infos = [
                    {**info, "frame": frame} for info, frame in zip(infos, self.venv.env_method("render"), strict=True)
                ]
            if recorder.keep_states:
                infos = [
                    {**info, "sim_state": state}
                    for info, state in zip(infos, self.venv.env_method("sim_state"), strict=True)
                ]
            recorder.start(self._last_obs, infos)
        self._set_frame_capture(self._frames_wanted)

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
        frame_list = [info.pop("frame", None) for info in infos]
        self._steps += 1
        rows = np.flatnonzero(_due(self.reward_fn, self._steps, dones))
        if len(rows):
            batch = Transitions(self._last_obs, self._actions, next_obs, list(infos))
            if len(rows) < self.num_envs:
                batch = batch.subset(rows)
            if self.reward_fn.needs_frames:
                batch.frames = _frames_at(frame_list, rows)
            self._held[rows] = self.reward_fn(batch)
        rewards = self._held.copy()
        if self.reward_fn.reward_at_episode_end:
            self._held[:] = 0.0
        if self.recorder is not None:
            reset_infos = self._reset_infos()
            self.recorder.add(self._actions, next_obs, obs, dones, infos, reset_infos, frame_list)
            if self._per_episode_capture:
                self._capture_new_episodes(np.flatnonzero(dones), reset_infos)
        self._returns += rewards
        for i in np.flatnonzero(dones):
            infos[i]["episode_model_return"] = float(self._returns[i])
            self._returns[i] = 0.0
            self._steps[i] = 0
            self._held[i] = 0.0
        self._last_obs = _copy_obs(obs)
        return obs, rewards, dones, infos

    def set_reward_fn(self, reward_fn: RewardFunction | Any) -> None:
        """Swap the reward function (e.g. after a learned reward is retrained); frame capture follows its needs."""
        self.reward_fn = make_reward(reward_fn)
        self._set_frame_capture(self._frames_wanted)

    @property
    def _frames_wanted(self) -> bool:
        return self.reward_fn.needs_frames or (self.recorder is not None and self.recorder.keep_frames)

    @property
    def _per_episode_capture(self) -> bool:
        """Whether frames are rendered per sub-env, in the episodes whose frames the recorder keeps."""
        recorder = self.recorder
        return (
            recorder is not None
            and recorder.keep_frames
            and recorder.frames_every > 1
            and not self.reward_fn.needs_frames
        )

    def _capture_new_episodes(self, rows: np.ndarray, reset_infos: list[dict]) -> None:
        """Switch rendering on or off for the episodes that just began in sub-envs ``rows``; one that keeps its
        frames but began with rendering off gets its first frame now (the sub-env is where it was reset)."""
        for i in (int(i) for i in rows):
            wanted = self.recorder.wants_frames(i)
            self.venv.env_method("set_frame_capture", wanted, indices=[i])
            if wanted and "frame" not in reset_infos[i]:
                self.recorder.set_first_frame(i, self.venv.env_method("render", indices=[i])[0])

    def _set_frame_capture(self, enabled: bool) -> None:
        if enabled and self._per_episode_capture:
            started = self.recorder.started  # before the first reset, every sub-env's first episode keeps frames
            for i in range(self.num_envs):
                self.venv.env_method("set_frame_capture", not started or self.recorder.wants_frames(i), indices=[i])
            return
        every, at_end = 1, False
        if not (self.recorder is not None and self.recorder.keep_frames):
            every, at_end = self.reward_fn.reward_every, self.reward_fn.reward_at_episode_end
        try:
            self.venv.env_method("set_frame_capture", enabled, every, at_end)
        except AttributeError:
            if enabled:
                raise TypeError(
                    f"{type(self.reward_fn).__name__} needs frames, which VecRewardWrapper renders inside each "
                    "sub-env before auto-reset: make the sub-envs with robofeedback.envs.make"
                ) from None


def _frames_at(frame_list: list[np.ndarray | None], rows: np.ndarray) -> np.ndarray:
    missing = [int(i) for i in rows if frame_list[i] is None]
    if missing:
        raise RuntimeError(f"sub-envs {missing} rendered no frame on a step the reward scores")
    return np.stack([frame_list[i] for i in rows])
