"""Environments: ``make(spec)`` for panda-gym, MetaWorld, PyBullet locomotion and any Gymnasium id.

Specs are ``family:id``:

- ``panda:PandaReach-v3`` (also Push, Slide, PickAndPlace, Stack, Flip, and their Dense/Joints variants);
- ``metaworld:reach`` or ``metaworld:reach-v3`` (any MetaWorld v3 task);
- ``bullet:AntBulletEnv-v0`` (Ant, HalfCheetah, Hopper, Walker2D, Humanoid);
- ``safety:pendulum``, ``safety:drone``, ``safety:arm`` (games with a hidden safety constraint, for safe MPC);
- any other registered Gymnasium id, e.g. ``Pendulum-v1``.

Every env returned keeps the info contract of :class:`~robofeedback.envs.base.RobotEnv`.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from robofeedback.envs.base import FactorInfo, RobotEnv
from robofeedback.envs.camera import Camera

# MuJoCo picks its OpenGL backend when it is first imported: headless EGL unless the user chose.
if "MUJOCO_GL" not in os.environ:
    if "mujoco" in sys.modules:
        warnings.warn(
            "mujoco was imported before robofeedback could set MUJOCO_GL=egl, so headless rendering may fail; "
            "set MUJOCO_GL=egl in the environment, or import robofeedback.envs before mujoco",
            stacklevel=2,
        )
    os.environ["MUJOCO_GL"] = "egl"

__all__ = ["Camera", "FactorInfo", "RobotEnv", "make", "available", "UnknownEnvError", "BackendNotInstalledError"]


class UnknownEnvError(ValueError):
    """A spec that names no env robofeedback can make."""


class BackendNotInstalledError(ImportError):
    """A spec whose simulator package is not installed."""


# family -> (package extra that installs it, description)
FAMILIES: dict[str, tuple[str, str]] = {
    "panda": ("panda", "panda-gym arm tasks in PyBullet"),
    "metaworld": ("metaworld", "MetaWorld v3 Sawyer tasks in MuJoCo"),
    "bullet": ("bullet", "PyBullet locomotion"),
    "safety": ("safety", "safety games with a hidden constraint (pendulum, drone, PyBullet arm)"),
}


def _panda_ids() -> list[str]:
    from robofeedback.envs import panda

    return panda.env_ids()


def _metaworld_ids() -> list[str]:
    from robofeedback.envs import metaworld

    return metaworld.task_names()


def _bullet_ids() -> list[str]:
    from robofeedback.envs import bullet

    bullet._import_backend()
    return list(bullet.ENV_IDS)


def _safety_ids() -> list[str]:
    from robofeedback.envs import safety

    return list(safety.GAMES)


_ID_LISTS: dict[str, Callable[[], list[str]]] = {
    "panda": _panda_ids,
    "metaworld": _metaworld_ids,
    "bullet": _bullet_ids,
    "safety": _safety_ids,
}


def family_ids(family: str) -> list[str]:
    """The ids a family offers; raises :class:`BackendNotInstalledError` if its simulator is missing."""
    if family not in _ID_LISTS:
        raise UnknownEnvError(f"unknown env family {family!r}; choose one of {sorted(_ID_LISTS)} or a Gymnasium id")
    try:
        return _ID_LISTS[family]()
    except ImportError as e:
        extra = FAMILIES[family][0]
        raise BackendNotInstalledError(
            f"env family {family!r} needs a package that is not installed ({e}); "
            f"install it with: pip install 'robofeedback[{extra}]'"
        ) from e


def available() -> dict[str, dict[str, Any]]:
    """What can be made here: per family, whether its simulator is installed and which ids it offers."""
    out: dict[str, dict[str, Any]] = {}
    for family, (extra, description) in FAMILIES.items():
        try:
            ids, error = family_ids(family), None
        except BackendNotInstalledError as e:
            ids, error = [], str(e)
        out[family] = {
            "description": description,
            "installed": error is None,
            "ids": ids,
            "error": error,
            "extra": extra,
        }
    return out


def _check_id(spec: str, name: str, valid: list[str]) -> None:
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownEnvError(f"unknown env spec {spec!r}.{hint} Valid choices: {', '.join(valid)}")


def make(spec: str, seed: int | None = None, render_size: int | tuple[int, int] = 224, **kwargs: Any) -> RobotEnv:
    """Make the env named by ``spec`` with robofeedback's info contract.

    ``seed`` seeds the first reset and the action space; ``render_size`` (an int
    or ``(width, height)``) is the size of ``env.render()`` frames and of
    ``env.camera``. Other keyword arguments go to the family adapter (e.g.
    ``flatten=True`` for panda dict observations, ``camera={...}``,
    ``max_episode_steps=`` for MetaWorld) or, for plain Gymnasium ids, to
    ``gymnasium.make``.
    """
    if not isinstance(spec, str) or not spec:
        raise UnknownEnvError(f"env spec must be a non-empty string like 'panda:PandaReach-v3', got {spec!r}")
    env = _make(spec, seed, render_size, kwargs)
    env.make_kwargs = dict(kwargs)
    return env


def policy_env_kwargs(env: Any, env_kwargs: dict[str, Any], hindsight: bool = False) -> dict[str, Any]:
    """The kwargs a policy's envs of ``env`` (a spec, or an env given as is) are made with: dict observations of
    families that have them (panda) flattened, since learned and written rewards read flat observations, unless
    ``hindsight`` relabelling reads their goals."""
    kwargs = dict(env_kwargs)
    if isinstance(env, str) and env.partition(":")[0] == "panda":
        kwargs.setdefault("flatten", not hindsight)
    return kwargs


def _make(spec: str, seed: int | None, render_size: int | tuple[int, int], kwargs: dict[str, Any]) -> RobotEnv:
    family, sep, name = spec.partition(":")
    if sep and family in FAMILIES:
        valid = family_ids(family)
        if family == "metaworld":
            name = name.removesuffix("-v3")
        _check_id(spec, name, valid)
        if family == "panda":
            from robofeedback.envs.panda import PandaEnv

            return PandaEnv(name, seed=seed, render_size=render_size, **kwargs)
        if family == "metaworld":
            from robofeedback.envs.metaworld import MetaWorldEnv

            return MetaWorldEnv(name, seed=seed, render_size=render_size, **kwargs)
        if family == "safety":
            from robofeedback.envs.safety import SafetyEnv

            return SafetyEnv(name, seed=seed, render_size=render_size, **kwargs)
        from robofeedback.envs.bullet import BulletLocomotionEnv

        return BulletLocomotionEnv(name, seed=seed, render_size=render_size, **kwargs)
    if sep and spec not in gym.registry:
        raise UnknownEnvError(
            f"unknown env family {family!r} in spec {spec!r}; families are {', '.join(sorted(FAMILIES))}, "
            "or give a registered Gymnasium id"
        )
    if spec not in gym.registry:
        close = difflib.get_close_matches(spec, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownEnvError(
            f"unknown env spec {spec!r}.{hint} Use family:id with a family in {sorted(FAMILIES)} "
            "(run `robofeedback envs` to list them) or a registered Gymnasium id"
        )
    from robofeedback.envs.generic import GymEnv

    return GymEnv(spec, seed=seed, render_size=render_size, **kwargs)
