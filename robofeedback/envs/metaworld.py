"""MetaWorld v3 tasks (``metaworld:<task>``): the Sawyer arm in MuJoCo, rendered headless (EGL)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robofeedback.envs.base import CTRL_COST, FactorInfo, RobotEnv, ctrl_cost
from robofeedback.envs.sim_state import mujoco_state, set_mujoco_state

# An orbit view from the front-right of the table that shows the gripper, the
# objects and the goal; MetaWorld's own "corner" cameras render upside down.
DEFAULT_CAMERA = {"lookat": (0.0, 0.7, 0.1), "distance": 1.3, "azimuth": 150.0, "elevation": -30.0}

FACTORS = {
    "tcp_to_obj": FactorInfo("distance from the gripper centre to the task's main object (m)", -1),
    "obj_to_target": FactorInfo(
        "MetaWorld's task error: object to goal (for reach-v3, gripper to goal; for drawers and doors, how far the "
        "handle is from the goal position)",
        -1,
    ),
    "grasp_reward": FactorInfo("MetaWorld's shaping term for approaching/grasping the object, in [0, 1]", 1),
    "in_place_reward": FactorInfo("MetaWorld's shaping term for the object being at the goal, in [0, 1]", 1),
    "ctrl_cost": CTRL_COST,
    "progress": FactorInfo("decrease of obj_to_target this step", 1),
}


def _import_backend():
    import metaworld  # noqa: F401
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from robofeedback.envs import mujoco_view  # sets MUJOCO_GL before MetaWorld imports mujoco

    return mujoco_view, ALL_V3_ENVIRONMENTS


def task_names() -> list[str]:
    """The MetaWorld v3 task names, without the ``-v3`` suffix (needs MetaWorld installed)."""
    _, all_envs = _import_backend()
    return sorted(name.removesuffix("-v3") for name in all_envs)


class MetaWorldEnv(RobotEnv):
    """A MetaWorld v3 task with the goal in the observation; object and goal positions re-drawn every reset."""

    family = "metaworld"
    factor_info = FACTORS

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        render_size: int | tuple[int, int] = 224,
        camera: str | dict | None = None,
        max_episode_steps: int = 500,
        randomize: bool = True,
        fast_render: bool = True,
        flatten: bool = False,
    ):
        mujoco_view, all_envs = _import_backend()
        name = task if task.endswith("-v3") else f"{task}-v3"
        if max_episode_steps <= 0 or max_episode_steps > 500:
            raise ValueError(f"max_episode_steps must be in 1..500 for MetaWorld, got {max_episode_steps}")
        raw = all_envs[name]()
        # As MetaWorld's MT1 benchmark sets up its tasks: goal observable, and
        # (with randomize) a new object/goal placement drawn from the env's own
        # seeded generator at every reset.
        raw._partially_observable = False
        raw._set_task_called = True
        raw._freeze_rand_vec = False
        raw.seeded_rand_vec = True
        del raw.sawyer_observation_space  # a cached property that depends on _partially_observable
        raw.seed(0 if seed is None else seed)
        if not randomize:
            raw.reset()
            raw._freeze_rand_vec = True
        raw.max_path_length = max_episode_steps
        env = gym.wrappers.TimeLimit(raw, max_episode_steps)
        super().__init__(
            env, f"metaworld:{name.removesuffix('-v3')}", seed=seed, render_size=render_size, flatten=flatten
        )
        self.task_name = name
        self._raw = raw
        settings = camera if camera is not None else DEFAULT_CAMERA
        if isinstance(settings, dict):
            settings = {**DEFAULT_CAMERA, **settings}
        self._view = mujoco_view.MujocoView(
            raw.model, self.render_width, self.render_height, settings, fast=fast_render
        )
        self._last_error: float | None = None

    def apply_seed(self, seed: int) -> None:
        self._raw.seed(seed)  # MetaWorld ignores reset(seed=...); its generator is set by seed()

    def agent_pos(self) -> np.ndarray:
        return np.asarray(self._raw.tcp_center, dtype=np.float64)

    def on_reset(self, obs: Any, info: dict) -> None:
        self._last_error = None
        # MetaWorld's reset leaves the derived positions (what rendering draws) of the last episode: a forward
        # pass brings them to the new placement, keeping the goal marker it sets directly.
        self.set_sim_state(self.sim_state())

    def compute_factors(self, obs: Any, action: np.ndarray, reward: float, info: dict) -> dict[str, float]:
        error = float(info["obj_to_target"])
        progress = 0.0 if self._last_error is None else self._last_error - error
        self._last_error = error
        return {
            "tcp_to_obj": float(np.linalg.norm(self._raw.tcp_center - np.asarray(obs)[4:7])),
            "obj_to_target": error,
            "grasp_reward": float(info["grasp_reward"]),
            "in_place_reward": float(info["in_place_reward"]),
            "ctrl_cost": ctrl_cost(action),
            "progress": progress,
        }

    def observation_layout(self) -> list[tuple[tuple[int, int], str]] | None:
        return [
            ((0, 3), "gripper (end effector) position (x, y, z)"),
            ((3, 4), "gripper opening (distance between the fingers, normalised)"),
            ((4, 7), "main object position (x, y, z)"),
            ((7, 11), "main object orientation (quaternion)"),
            ((11, 14), "second object position (zeros when the task has none)"),
            ((14, 18), "second object orientation (quaternion)"),
            ((18, 36), "the same 18 values at the previous step"),
            ((36, 39), "goal position (x, y, z)"),
        ]

    def is_success(self, info: dict) -> bool | None:
        return bool(info["success"]) if "success" in info else None

    @property
    def camera(self):
        return self._view.camera(self._raw.data)

    def render(self) -> np.ndarray:
        return self._view.render(self._raw.data)

    def sim_state(self) -> np.ndarray:
        return mujoco_state(self._raw.model, self._raw.data)

    def set_sim_state(self, state: np.ndarray) -> None:
        set_mujoco_state(self._raw.model, self._raw.data, state)

    def segmentation(self) -> np.ndarray:
        """Per-pixel MuJoCo ``(object id, object type)`` through the render camera."""
        return self._view.segmentation(self._raw.data)
