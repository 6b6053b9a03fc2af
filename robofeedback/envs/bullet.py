"""PyBullet locomotion (``bullet:<id>``): Ant, HalfCheetah, Hopper, Walker2D, Humanoid from pybullet-envs-gymnasium."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robofeedback.envs.base import CTRL_COST, FactorInfo, RobotEnv, ctrl_cost, quiet_native_output
from robofeedback.envs.camera import Camera
from robofeedback.envs.pybullet_view import check_settings, orbit_camera, render_pybullet, segmentation
from robofeedback.envs.sim_state import bullet_state, set_bullet_state

ENV_IDS = (
    "AntBulletEnv-v0",
    "HalfCheetahBulletEnv-v0",
    "HopperBulletEnv-v0",
    "Walker2DBulletEnv-v0",
    "HumanoidBulletEnv-v0",
)

# The env's own tracking camera (pybullet_envs: distance 3, yaw 0, pitch -30), following the torso.
DEFAULT_CAMERA = {"distance": 3.0, "yaw": 0.0, "pitch": -30.0, "fov": 60.0}

# The env's reward is exactly alive + progress - electricity - joints_at_limit - feet_collision.
FACTORS = {
    "alive": FactorInfo("alive bonus: positive while the torso is high and upright enough, negative when falling", 1),
    "progress": FactorInfo("decrease of the potential -distance/dt to the walk target this step (forward speed)", 1),
    "electricity": FactorInfo("motor power cost: |a * joint speed| plus stall torque a^2 (as a positive cost)", -1),
    "joints_at_limit": FactorInfo("0.1 per joint at its limit (as a positive cost)", -1),
    "feet_collision": FactorInfo(
        "feet colliding with non-ground objects (as a positive cost; always 0 on pybullet's flat ground)", -1
    ),
    "ctrl_cost": CTRL_COST,
}


def _import_backend():
    with quiet_native_output():
        import pybullet
        import pybullet_envs_gymnasium  # noqa: F401  (registers the *BulletEnv ids)
    return pybullet


class BulletLocomotionEnv(RobotEnv):
    """A pybullet locomotion task with the info contract and a camera that follows the torso."""

    family = "bullet"
    factor_info = FACTORS

    def __init__(
        self,
        env_id: str,
        seed: int | None = None,
        render_size: int | tuple[int, int] = 224,
        camera: dict | None = None,
        shadows: bool = False,
        **kwargs: Any,
    ):
        self._pybullet = _import_backend()
        with quiet_native_output():
            env = gym.make(env_id, **kwargs)
        super().__init__(env, f"bullet:{env_id}", seed=seed, render_size=render_size)
        self.camera_settings = check_settings(camera, DEFAULT_CAMERA)
        self.shadows = shadows
        self._raw = env.unwrapped

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with quiet_native_output():  # pybullet_envs connects to the physics server on the first reset
            return super().reset(seed=seed, options=options)

    def agent_pos(self) -> np.ndarray:
        return np.asarray(self._raw.robot.body_real_xyz, dtype=np.float64)

    def compute_factors(self, obs: Any, action: np.ndarray, reward: float, info: dict) -> dict[str, float]:
        alive, progress, electricity, joints_at_limit, feet_collision = (float(x) for x in self._raw.rewards)
        return {
            "alive": alive,
            "progress": progress,
            "electricity": 0.0 - electricity,
            "joints_at_limit": 0.0 - joints_at_limit,
            "feet_collision": 0.0 - feet_collision,
            "ctrl_cost": ctrl_cost(action),
        }

    @property
    def camera(self) -> Camera:
        return self.camera_at(self.agent_pos())

    def camera_at(self, agent_pos: np.ndarray) -> Camera:
        return orbit_camera(self._pybullet, agent_pos, self.camera_settings, self.render_width, self.render_height)

    def render(self) -> np.ndarray:
        return render_pybullet(self._pybullet, self._raw._p, self.camera, self.shadows)

    def sim_state(self) -> np.ndarray:
        return bullet_state(self._raw._p)

    def set_sim_state(self, state: np.ndarray) -> None:
        set_bullet_state(self._raw._p, state)

    def render_state(self, state: np.ndarray, agent_pos: np.ndarray) -> np.ndarray:
        self.set_sim_state(state)  # the camera follows the torso: placed from the recorded position
        return render_pybullet(self._pybullet, self._raw._p, self.camera_at(agent_pos), self.shadows)

    def segmentation(self) -> np.ndarray:
        """Per-pixel PyBullet body id through the render camera (``-1`` for background)."""
        return segmentation(self._pybullet, self._raw._p, self.camera)
