"""The info contract every robofeedback env keeps, as one Gymnasium wrapper.

An adapter for a simulator family subclasses :class:`RobotEnv` and says how to
read the agent's position, the named reward factors and success from its env,
and how to render a frame with a known :class:`~robofeedback.envs.camera.Camera`.
The wrapper then puts, on every step:

- ``info["env_reward"]``: the task's own reward (ground truth for evaluation and
  scripted teachers, never an input to a feedback method);
- ``info["agent_pos"]``: 3-D world position of the end effector or torso;
- ``info["factors"]``: a dict of named reward components (see ``factor_info``);
- ``info["success"]``: a bool, where the task defines success (also as ``is_success``,
  the key stable-baselines3 logs success rates from);
- ``info["frame"]``: the rendered frame, on steps and resets, only while frame capture
  is switched on (what reward functions with ``needs_frames`` use, rendered before any
  auto-reset).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robofeedback.config import require_positive_ints
from robofeedback.envs.camera import Camera


@dataclass(frozen=True)
class FactorInfo:
    """What a named reward factor measures; ``sign`` is +1 when higher is better, -1 for a cost."""

    description: str
    sign: int


CTRL_COST = FactorInfo("squared norm of the action, sum(a_i^2)", -1)


def _parse_size(render_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(render_size, (int, np.integer)):
        width = height = int(render_size)
    else:
        try:
            width, height = (int(x) for x in render_size)
        except (TypeError, ValueError):
            raise ValueError(f"render_size must be an int or a (width, height) pair, got {render_size!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"render_size must be positive, got {render_size!r}")
    return width, height


def scheduled(step, done, every: int, at_episode_end: bool):
    """Whether a step is one of a sparse schedule's (scalars, or arrays of steps and dones): with
    ``at_episode_end`` an episode's last step, else every ``every``-th step (``step`` counts from 1 in each
    episode: the 1st, (k+1)th, ...). Frame capture and the reward wrappers share it, so that a frame is
    rendered exactly on the steps a reward function scores."""
    if at_episode_end:
        return np.asarray(done, dtype=bool)
    return (np.asarray(step) - 1) % every == 0


class RobotEnv(gym.Wrapper):
    """Base wrapper that adds robofeedback's info contract, a camera and sized rendering to a simulator env."""

    family: str = "gym"
    factor_info: dict[str, FactorInfo] = {}
    _view = None  # a MujocoView, closed with the env, for MuJoCo-rendered families

    def __init__(
        self,
        env: gym.Env,
        spec: str,
        seed: int | None = None,
        render_size: int | tuple[int, int] = 224,
        flatten: bool = False,
    ):
        super().__init__(env)
        self.spec_name = spec
        self.render_width, self.render_height = _parse_size(render_size)
        self._seed = seed
        self._seeded = False
        self._capture_frames = False
        self._capture_every, self._capture_at_end = 1, False
        self._capture_states = False
        self._episode_step = 0
        self.make_kwargs: dict[str, Any] = {}  # the options make() built this env with, for envs.clone()
        self._dict_space = env.observation_space if flatten and isinstance(env.observation_space, spaces.Dict) else None
        if self._dict_space is not None:
            self.observation_space = spaces.flatten_space(self._dict_space)
        if seed is not None:
            self.action_space.seed(seed)
        self.metadata = {**getattr(env, "metadata", {}), "render_modes": ["rgb_array"]}

    # -- what a family adapter provides -------------------------------------------------

    def agent_pos(self) -> np.ndarray:
        """The 3-D world position of the end effector (arms) or torso (locomotion)."""
        raise NotImplementedError(f"{type(self).__name__} does not define agent_pos()")

    def compute_factors(self, obs: Any, action: np.ndarray, reward: float, info: dict) -> dict[str, float]:
        """Named reward components of the step that produced ``obs``; keys are those of ``factor_info``."""
        raise NotImplementedError(f"{type(self).__name__} does not define compute_factors()")

    def observation_layout(self) -> list[tuple[tuple[int, int], str]] | None:
        """What the parts of a flat observation mean, as ``((start, end), description)`` rows (for prompts that
        describe the env to an LLM); None where the adapter does not know."""
        return None

    def is_success(self, info: dict) -> bool | None:
        """Whether the task counts as solved now, or None where the task defines no success."""
        return None

    @property
    def camera(self) -> Camera:
        """The camera that ``render()`` uses, at the current state."""
        raise NotImplementedError(f"{self.spec_name} has no camera model")

    def camera_at(self, agent_pos: np.ndarray) -> Camera:
        """The camera ``render()`` uses when the agent is at ``agent_pos`` (the same camera for a fixed view;
        adapters whose camera follows the agent override this), so that a recorded frame's camera is known."""
        return self.camera

    def render(self) -> np.ndarray:
        """An RGB ``uint8`` frame of shape ``(render_height, render_width, 3)``, seen through ``camera``."""
        raise NotImplementedError(f"{type(self).__name__} does not define render()")

    def sim_state(self) -> np.ndarray:
        """The simulator's state as a flat float64 vector (:mod:`robofeedback.envs.sim_state`), which
        :meth:`render_state` in another env of the same spec and options renders as this env would now."""
        raise NotImplementedError(f"{type(self).__name__} cannot save its simulator's state")

    def set_sim_state(self, state: np.ndarray) -> None:
        """Put the simulator in a :meth:`sim_state` (for rendering: the episode's bookkeeping is not touched)."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore a simulator state")

    def render_state(self, state: np.ndarray, agent_pos: np.ndarray) -> np.ndarray:
        """The frame :meth:`render` showed when the simulator was in ``state`` with the agent at ``agent_pos``."""
        self.set_sim_state(state)
        return self.render()

    def apply_seed(self, seed: int) -> None:
        """Hook for simulators that take their seed other than through ``reset(seed=...)``."""

    def on_reset(self, obs: Any, info: dict) -> None:
        """Hook for adapters that keep per-episode state (e.g. the last distance for a progress factor)."""

    # -- the contract ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None:
            self._seeded = True
            self.apply_seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        self.on_reset(obs, info)
        self._episode_step = 0
        info["agent_pos"] = np.asarray(self.agent_pos(), dtype=np.float64).copy()
        success = self.is_success(info)
        if success is not None:
            info["success"] = bool(success)
        if self._capture_frames and self._capture_every == 1 and not self._capture_at_end:
            info["frame"] = self.render()
        if self._capture_states:
            info["sim_state"] = self.sim_state()
        return self._observe(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        reward = float(reward)
        info["env_reward"] = reward
        info["agent_pos"] = np.asarray(self.agent_pos(), dtype=np.float64).copy()
        info["factors"] = {k: float(v) for k, v in self.compute_factors(obs, np.asarray(action), reward, info).items()}
        success = self.is_success(info)
        if success is not None:
            info["success"] = bool(success)
            info.setdefault("is_success", bool(success))  # the key SB3 logs rollout/success_rate from
        self._episode_step += 1
        if self._capture_frames and scheduled(
            self._episode_step, terminated or truncated, self._capture_every, self._capture_at_end
        ):
            info["frame"] = self.render()
        if self._capture_states:
            info["sim_state"] = self.sim_state()
        return self._observe(obs), reward, bool(terminated), bool(truncated), info

    @property
    def render_mode(self) -> str:
        return "rgb_array"

    def set_frame_capture(self, enabled: bool, every: int = 1, at_episode_end: bool = False) -> None:
        """Put the rendered frame into ``info["frame"]`` after reset and on every step (off by default: rendering
        is slow), or only on every ``every``-th step of an episode (the 1st, (k+1)th, ...), or only on its last."""
        require_positive_ints(every=every)
        self._capture_frames = bool(enabled)
        self._capture_every, self._capture_at_end = every, bool(at_episode_end)

    def set_state_capture(self, enabled: bool) -> None:
        """Put the simulator's state (:meth:`sim_state`) into ``info["sim_state"]`` after reset and every step."""
        self._capture_states = bool(enabled)

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
        super().close()

    def describe(self) -> dict[str, Any]:
        """A plain description of the env: spec, spaces and factors (used in prompts and logs)."""
        return {
            "spec": self.spec_name,
            "family": self.family,
            "observation_space": repr(self.observation_space),
            "action_space": repr(self.action_space),
            "factors": {k: {"description": f.description, "sign": f.sign} for k, f in self.factor_info.items()},
        }

    def _observe(self, obs: Any) -> Any:
        if self._dict_space is None:
            return obs
        return spaces.flatten(self._dict_space, obs).astype(self.observation_space.dtype)


def ctrl_cost(action: np.ndarray) -> float:
    a = np.asarray(action, dtype=np.float64)
    return float(np.sum(a * a)) if a.dtype.kind == "f" else 0.0


@contextlib.contextmanager
def quiet_native_output():
    """Silence what C extensions print straight to file descriptors 1 and 2 (PyBullet's banner and connection
    arguments); Python exceptions raised inside still propagate."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    try:
        with open(os.devnull, "w") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
