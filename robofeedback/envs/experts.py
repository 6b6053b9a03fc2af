"""Scripted experts: hand-written controllers that solve a task from the simulator's true state.

They make reference rollouts (expert videos, reward-quality checks, training renders for the mini CLIP)
without training a policy. ``expert(env)`` returns ``policy(obs) -> action`` for ``collect``; ``noise``
adds Gaussian noise of that standard deviation to each action (clipped to the action space).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robofeedback.envs.base import RobotEnv

PANDA_TASKS = ("Reach", "Push")
METAWORLD_TASKS = (
    "reach",
    "push",
    "pick-place",
    "drawer-open",
    "drawer-close",
    "button-press-topdown",
    "door-open",
    "sweep-into",
    "soccer",
)


def expert(env: RobotEnv, noise: float = 0.0, seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A scripted expert for ``env`` (panda-gym Reach/Push, or a MetaWorld task with a shipped policy)."""
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    family = getattr(env, "family", None)
    if family == "panda" and env.task_name in PANDA_TASKS:
        act = _panda_reach(env) if env.task_name == "Reach" else _panda_push(env)
    elif family == "metaworld" and env.task_name.removesuffix("-v3") in METAWORLD_TASKS:
        act = _metaworld_policy(env)
    else:
        raise ValueError(
            f"no scripted expert for {getattr(env, 'spec_name', env)}; there are experts for panda "
            f"{list(PANDA_TASKS)} and metaworld {list(METAWORLD_TASKS)}"
        )
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high

    def policy(obs: np.ndarray) -> np.ndarray:
        action = act(obs)
        if noise:
            action = action + rng.normal(0.0, noise, size=action.shape)
        return np.clip(action, low, high).astype(np.float32)

    return policy


def _toward(ee: np.ndarray, aim: np.ndarray) -> np.ndarray:
    """panda-gym moves the gripper by 0.05 m per unit of action: the action that heads for ``aim``."""
    return np.clip((aim - ee) / 0.05, -1.0, 1.0)


def _panda_reach(env: RobotEnv) -> Callable[[np.ndarray], np.ndarray]:
    def act(obs: np.ndarray) -> np.ndarray:
        return _toward(env._robot.get_ee_position(), env._task.get_goal())

    return act


def _panda_push(env: RobotEnv) -> Callable[[np.ndarray], np.ndarray]:
    def act(obs: np.ndarray) -> np.ndarray:
        ee = env._robot.get_ee_position()
        obj = np.asarray(env._sim.get_base_position("object"))
        goal = env._task.get_goal()
        direction = goal[:2] - obj[:2]
        direction /= max(np.linalg.norm(direction), 1e-6)
        rel = ee[:2] - obj[:2]
        behind = rel @ direction < -0.025 and abs(rel @ np.array([-direction[1], direction[0]])) < 0.012
        if behind and ee[2] < 0.04:  # in place behind the cube: push it through towards the goal
            aim = np.array([*(obj[:2] + direction * 0.05), obj[2]])
        else:  # go over the cube to the push position, then down
            pre = obj[:2] - direction * 0.05
            low = np.linalg.norm(ee[:2] - pre) < 0.01
            aim = np.array([*pre, obj[2] if low else 0.08])
        return _toward(ee, aim)

    return act


def _metaworld_policy(env: RobotEnv) -> Callable[[np.ndarray], np.ndarray]:
    import metaworld.policies as policies

    name = "Sawyer" + "".join(part.capitalize() for part in env.task_name.removesuffix("-v3").split("-")) + "V3Policy"
    scripted = getattr(policies, name)()
    return lambda obs: np.asarray(scripted.get_action(np.asarray(obs)), dtype=np.float64)
