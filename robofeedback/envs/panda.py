"""panda-gym tasks (``panda:<id>``): the Franka arm in PyBullet, rendered with TinyRenderer."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robofeedback.envs.base import CTRL_COST, FactorInfo, RobotEnv, ctrl_cost, quiet_native_output
from robofeedback.envs.camera import Camera
from robofeedback.envs.pybullet_view import check_settings, orbit_camera, render_pybullet, segmentation
from robofeedback.envs.sim_state import bullet_state, set_bullet_state

TASKS = ("Reach", "Push", "Slide", "PickAndPlace", "Stack", "Flip")

# A closer view than panda-gym's default (distance 1.4 around the origin), so
# that the small objects stay visible in 84-224 pixel frames.
# Close on the workspace (goals within 0.15 m of the table centre, up to 0.3 m high), so that the target and
# cube stay several pixels wide in the small frames vision rewards use.
DEFAULT_CAMERA = {"target": (-0.05, 0.0, 0.1), "distance": 0.75, "yaw": 45.0, "pitch": -35.0, "fov": 60.0}


def _import_backend():
    with quiet_native_output():
        import panda_gym  # noqa: F401  (registers the Panda* ids)
        import pybullet
    return pybullet


def env_ids() -> list[str]:
    """The registered panda-gym ids (needs panda-gym installed)."""
    _import_backend()
    return sorted(k for k in gym.registry if k.startswith("Panda"))


def _task_of(env_id: str) -> str:
    name = env_id[len("Panda") :].split("-")[0]
    for suffix in ("JointsDense", "Joints", "Dense"):
        name = name.removesuffix(suffix)
    return name


class PandaEnv(RobotEnv):
    """A panda-gym task with the info contract; dict observations kept, or flattened with ``flatten=True``.

    panda-gym ends an episode when the task succeeds; ``terminate_on_success=False``
    keeps it running to the time limit instead, which rewards learned from
    preferences need (they are only known up to a constant, and a positive one
    would teach the agent to avoid the success that ends its episode).
    """

    family = "panda"

    def __init__(
        self,
        env_id: str,
        seed: int | None = None,
        render_size: int | tuple[int, int] = 224,
        flatten: bool = False,
        camera: dict | None = None,
        shadows: bool = False,
        terminate_on_success: bool = True,
        **kwargs: Any,
    ):
        self._pybullet = _import_backend()
        with quiet_native_output():
            env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        super().__init__(env, f"panda:{env_id}", seed=seed, render_size=render_size, flatten=flatten)
        self.camera_settings = check_settings(camera, DEFAULT_CAMERA)
        self.shadows = shadows
        self.terminate_on_success = terminate_on_success
        self.task_name = _task_of(env_id)
        self._sim = env.unwrapped.sim
        self._robot = env.unwrapped.robot
        self._task = env.unwrapped.task
        self._objects = {"Stack": ["object1", "object2"], "Reach": []}.get(self.task_name, ["object"])
        self.factor_info = self._factor_info()
        self._last_distance: float | None = None
        self._episode_seeds: np.random.Generator | None = None

    def apply_seed(self, seed: int) -> None:
        self._episode_seeds = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # panda-gym re-creates its task's generator from OS entropy on every reset without a seed, so goals after
        # the first episode would not be reproducible; once seeded, each episode's seed comes from our own stream.
        if seed is None and self._episode_seeds is not None:
            seed = int(self._episode_seeds.integers(2**31 - 1))
        return super().reset(seed=seed, options=options)

    def _factor_info(self) -> dict[str, FactorInfo]:
        info: dict[str, FactorInfo] = {}
        if self.task_name == "Reach":
            info["ee_to_target"] = FactorInfo("distance from the gripper to the target (m)", -1)
        for name in self._objects:
            info[f"ee_to_{name}"] = FactorInfo(f"distance from the gripper to {name} (m)", -1)
        if self.task_name == "Flip":
            info["object_rotation_error"] = FactorInfo(
                "angle between the object's and the target's orientation (rad)", -1
            )
        elif self.task_name == "Stack":
            for i in (1, 2):
                info[f"object{i}_to_target{i}"] = FactorInfo(f"distance from object{i} to target{i} (m)", -1)
        elif self._objects:
            info["object_to_target"] = FactorInfo("distance from the object to the target (m)", -1)
        info["ctrl_cost"] = CTRL_COST
        info["progress"] = FactorInfo("decrease of the task distance (sum of the *_to_target terms) this step", 1)
        return info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        # panda-gym ends an episode exactly when the task succeeds; without that, episodes run to the time limit
        return obs, reward, terminated and self.terminate_on_success, truncated, info

    def agent_pos(self) -> np.ndarray:
        return self._robot.get_ee_position()

    def _distances(self) -> dict[str, float]:
        ee = self._robot.get_ee_position()
        goal = np.asarray(self._task.goal, dtype=np.float64)
        out: dict[str, float] = {}
        if self.task_name == "Reach":
            out["ee_to_target"] = float(np.linalg.norm(ee - goal))
        for name in self._objects:
            out[f"ee_to_{name}"] = float(np.linalg.norm(ee - self._sim.get_base_position(name)))
        if self.task_name == "Flip":
            from panda_gym.utils import angle_distance

            out["object_rotation_error"] = float(angle_distance(self._task.get_achieved_goal(), goal))
        elif self.task_name == "Stack":
            for i, name in enumerate(self._objects, start=1):
                pos = self._sim.get_base_position(name)
                out[f"object{i}_to_target{i}"] = float(np.linalg.norm(pos - goal[3 * (i - 1) : 3 * i]))
        elif self._objects:
            out["object_to_target"] = float(np.linalg.norm(self._sim.get_base_position("object") - goal))
        return out

    def _task_distance(self, distances: dict[str, float]) -> float:
        return sum(v for k, v in distances.items() if "target" in k or k == "object_rotation_error")

    def on_reset(self, obs: Any, info: dict) -> None:
        self._last_distance = self._task_distance(self._distances())

    def compute_factors(self, obs: Any, action: np.ndarray, reward: float, info: dict) -> dict[str, float]:
        factors = self._distances()
        distance = self._task_distance(factors)
        factors["ctrl_cost"] = ctrl_cost(action)
        factors["progress"] = (self._last_distance - distance) if self._last_distance is not None else 0.0
        self._last_distance = distance
        return factors

    def observation_layout(self) -> list[tuple[tuple[int, int], str]] | None:
        if self._dict_space is None or self.task_name not in ("Reach", "Push", "Slide"):
            return None  # a dict observation says what it holds; grasping tasks add finger widths (not listed)
        achieved = "gripper position (x, y, z)" if self.task_name == "Reach" else "object position (x, y, z)"
        rows = [
            ((0, 3), f"achieved goal: {achieved}"),
            ((3, 6), "desired goal: the target position (x, y, z)"),
            ((6, 9), "gripper (end effector) position (x, y, z)"),
            ((9, 12), "gripper velocity"),
        ]
        if self.task_name != "Reach":
            rows += [
                ((12, 15), "object position (x, y, z)"),
                ((15, 18), "object rotation (Euler angles)"),
                ((18, 21), "object linear velocity"),
                ((21, 24), "object angular velocity"),
            ]
        return rows

    def is_success(self, info: dict) -> bool | None:
        if "is_success" in info:
            return bool(info["is_success"])
        return bool(self._task.is_success(self._task.get_achieved_goal(), self._task.get_goal()))

    @property
    def camera(self) -> Camera:
        s = self.camera_settings
        return orbit_camera(self._pybullet, s["target"], s, self.render_width, self.render_height)

    def render(self) -> np.ndarray:
        return render_pybullet(self._pybullet, self._sim.physics_client, self.camera, self.shadows)

    def sim_state(self) -> np.ndarray:
        return bullet_state(self._sim.physics_client)

    def set_sim_state(self, state: np.ndarray) -> None:
        set_bullet_state(self._sim.physics_client, state)

    def segmentation(self) -> np.ndarray:
        """Per-pixel PyBullet body id through the render camera (``-1`` for background)."""
        return segmentation(self._pybullet, self._sim.physics_client, self.camera)
