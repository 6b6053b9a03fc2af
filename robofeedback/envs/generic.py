"""Any other registered Gymnasium id, kept as it is apart from the info contract."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from robofeedback.envs.base import CTRL_COST, FactorInfo, RobotEnv, ctrl_cost
from robofeedback.envs.camera import Camera

# Orbit view for Gymnasium's MuJoCo envs, following the root body.
DEFAULT_MUJOCO_CAMERA = {"track_body": 1, "distance": 3.0, "azimuth": 90.0, "elevation": -20.0}


def _is_mujoco(raw: gym.Env) -> bool:
    model = getattr(raw, "model", None)
    return model is not None and type(model).__module__.startswith("mujoco") and hasattr(raw, "data")


class GymEnv(RobotEnv):
    """A Gymnasium env with the info contract: ``factors`` are ``ctrl_cost`` plus the numeric scalars the env puts
    in ``info``; ``agent_pos`` comes from ``agent_pos_fn(env.unwrapped)``, the root body of a MuJoCo env, or is NaN
    where neither says where the agent is."""

    family = "gym"

    def __init__(
        self,
        env_id: str,
        seed: int | None = None,
        render_size: int | tuple[int, int] = 224,
        flatten: bool = False,
        agent_pos_fn: Callable[[gym.Env], np.ndarray] | None = None,
        camera: dict | str | None = None,
        **kwargs: Any,
    ):
        env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        super().__init__(env, env_id, seed=seed, render_size=render_size, flatten=flatten)
        self._raw = env.unwrapped
        self._agent_pos_fn = agent_pos_fn
        self._view = None
        if _is_mujoco(self._raw):
            from robofeedback.envs.mujoco_view import MujocoView

            settings = camera if camera is not None else DEFAULT_MUJOCO_CAMERA
            self._view = MujocoView(self._raw.model, self.render_width, self.render_height, settings)
        elif camera is not None:
            raise ValueError(f"{env_id} is not a MuJoCo env: robofeedback cannot place a camera in it")
        if agent_pos_fn is None and self._view is None:
            warnings.warn(
                f"{env_id}: no agent position known, info['agent_pos'] will be NaN; pass agent_pos_fn=... to make()",
                stacklevel=4,
            )
        self.factor_info = {"ctrl_cost": CTRL_COST}

    def agent_pos(self) -> np.ndarray:
        if self._agent_pos_fn is not None:
            return np.asarray(self._agent_pos_fn(self._raw), dtype=np.float64).reshape(3)
        if self._view is not None:
            return np.asarray(self._raw.data.xpos[1], dtype=np.float64)
        return np.full(3, np.nan)

    def compute_factors(self, obs: Any, action: np.ndarray, reward: float, info: dict) -> dict[str, float]:
        factors = {"ctrl_cost": ctrl_cost(action)}
        for key, value in info.items():
            if key in ("env_reward", "success", "is_success") or isinstance(value, (bool, np.bool_)):
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
                factors[key] = float(value)
                if key not in self.factor_info:
                    self.factor_info[key] = FactorInfo(f"info[{key!r}] as the env reports it", 0)
        return factors

    def is_success(self, info: dict) -> bool | None:
        for key in ("is_success", "success"):
            if key in info:
                return bool(info[key])
        return None

    @property
    def camera(self) -> Camera:
        if self._view is None:
            raise NotImplementedError(f"{self.spec_name} is not a MuJoCo env: robofeedback knows no camera for it")
        return self._view.camera(self._raw.data)

    def render(self) -> np.ndarray:
        if self._view is not None:
            return self._view.render(self._raw.data)
        frame = np.asarray(self.env.render())
        if frame.shape[:2] != (self.render_height, self.render_width):
            frame = cv2.resize(frame, (self.render_width, self.render_height), interpolation=cv2.INTER_AREA)
        return frame
