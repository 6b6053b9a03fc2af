"""Environments: ``make(spec)`` for panda-gym, MetaWorld, PyBullet locomotion and any Gymnasium id.

Specs are ``family:id``:

- ``panda:PandaReach-v3`` (also Push, Slide, PickAndPlace, Stack, Flip, and their Dense/Joints variants);
- ``metaworld:reach`` or ``metaworld:reach-v3`` (any MetaWorld v3 task);
- ``bullet:AntBulletEnv-v0`` (Ant, HalfCheetah, Hopper, Walker2D, Humanoid);
- any other registered Gymnasium id, e.g. ``Pendulum-v1``;
- the families that methods register with :func:`register_family`: ``safety:pendulum``, ``safety:drone``,
  ``safety:arm`` (safe MPC's games with a hidden safety constraint).

Every env returned keeps the info contract of :class:`~robofeedback.envs.base.RobotEnv`.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from robofeedback import registry
from robofeedback.envs import bullet, metaworld, panda
from robofeedback.envs.base import FactorInfo, RobotEnv
from robofeedback.envs.bullet import BulletLocomotionEnv
from robofeedback.envs.camera import Camera
from robofeedback.envs.generic import GymEnv
from robofeedback.envs.metaworld import MetaWorldEnv
from robofeedback.envs.panda import PandaEnv

# MuJoCo picks its OpenGL backend when it is first imported: headless EGL unless the user chose.
if "MUJOCO_GL" not in os.environ:
    if "mujoco" in sys.modules:
        warnings.warn(
            "mujoco was imported before robofeedback could set MUJOCO_GL=egl, so headless rendering may fail; "
            "set MUJOCO_GL=egl in the environment, or import robofeedback.envs before mujoco",
            stacklevel=2,
        )
    os.environ["MUJOCO_GL"] = "egl"

__all__ = [
    "BackendNotInstalledError",
    "Camera",
    "FactorInfo",
    "Family",
    "RobotEnv",
    "UnknownEnvError",
    "available",
    "clone",
    "families",
    "get_family",
    "make",
    "register_family",
]


class UnknownEnvError(ValueError):
    """A spec that names no env robofeedback can make."""


class BackendNotInstalledError(ImportError):
    """A spec whose simulator package is not installed."""


@dataclass(frozen=True)
class Family:
    """A family of envs that ``make("<name>:<id>")`` makes: its adapter, the ids it offers, and the package extra
    that installs its simulator."""

    name: str
    make: Callable[..., RobotEnv]  # (id, seed=, render_size=, **kwargs) -> the env
    ids: Callable[[], list[str]]  # the ids; an ImportError when the simulator is missing
    extra: str
    description: str
    normalize: Callable[[str], str] | None = None  # an id as given -> the id it names (metaworld's "-v3" suffix)


_families: dict[str, Family] = {}


def register_family(
    name: str,
    make: Callable[..., RobotEnv],
    ids: Callable[[], list[str]],
    extra: str,
    description: str,
    normalize: Callable[[str], str] | None = None,
) -> Family:
    """Add the env family ``name`` (specs ``name:<id>``); a second, different family of the same name is an error.
    Methods whose envs are their own (safe MPC's games) register their family when their package is imported.

    >>> from robofeedback.envs.generic import GymEnv
    >>> family = register_family("toy", GymEnv, lambda: ["Pendulum-v1"], "gym", "one Gymnasium task")
    >>> env = make("toy:Pendulum-v1", seed=0, agent_pos_fn=lambda raw: [0.0, 0.0, 0.0])
    >>> env.action_space.shape
    (1,)
    >>> env.close()
    >>> _families.pop("toy") == family  # the example leaves the families as it found them
    True
    """
    if not name or ":" in name:
        raise ValueError(f"an env family's name is a non-empty word without ':', got {name!r}")
    family = Family(name, make, ids, extra, description, normalize)
    known = _families.get(name)
    if known is not None and known != family:
        raise ValueError(f"two env families are named {name!r}: {known.description!r} and {description!r}")
    _families[name] = family
    return family


def families() -> dict[str, Family]:
    """Every env family by name: the simulators' and those the registry's methods register."""
    registry.methods()
    return dict(_families)


def get_family(name: str) -> Family | None:
    """The env family ``name``, or None; a name not registered yet loads the registry's methods (which register
    theirs) before it is given up."""
    if name not in _families:
        registry.methods()
    return _families.get(name)


def _bullet_ids() -> list[str]:
    bullet._import_backend()
    return list(bullet.ENV_IDS)


register_family("panda", PandaEnv, panda.env_ids, "panda", "panda-gym arm tasks in PyBullet")
register_family(
    "metaworld",
    MetaWorldEnv,
    metaworld.task_names,
    "metaworld",
    "MetaWorld v3 Sawyer tasks in MuJoCo",
    normalize=lambda name: name.removesuffix("-v3"),
)
register_family("bullet", BulletLocomotionEnv, _bullet_ids, "bullet", "PyBullet locomotion")


def family_ids(name: str) -> list[str]:
    """The ids a family offers; raises :class:`BackendNotInstalledError` if its simulator is missing."""
    found = get_family(name)
    if found is None:
        raise UnknownEnvError(f"unknown env family {name!r}; choose one of {sorted(_families)} or a Gymnasium id")
    try:
        return found.ids()
    except ImportError as e:
        raise BackendNotInstalledError(
            f"env family {name!r} needs a package that is not installed ({e}); "
            f"install it with: pip install 'robofeedback[{found.extra}]'"
        ) from e


def package_versions(spec: str) -> dict[str, str]:
    """The installed versions of the packages that make ``spec``'s env: gymnasium and what the extra of its family
    installs (panda: panda-gym and pybullet; a plain Gymnasium id: gymnasium alone).

    >>> sorted(package_versions("panda:PandaReach-v3"))
    ['gymnasium', 'panda-gym', 'pybullet']
    """
    prefix, sep, _ = spec.partition(":")
    family = get_family(prefix) if sep else None
    names = []
    if family is not None:
        try:
            requirements = importlib.metadata.requires("robofeedback") or []
        except importlib.metadata.PackageNotFoundError:
            requirements = []
        marker = f'extra == "{family.extra}"'
        names = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in requirements if marker in r]
    versions = {}
    for package in ["gymnasium", *names]:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def available() -> dict[str, dict[str, Any]]:
    """What can be made here: per family, whether its simulator is installed and which ids it offers."""
    out: dict[str, dict[str, Any]] = {}
    for name, found in families().items():
        try:
            ids, error = family_ids(name), None
        except BackendNotInstalledError as e:
            ids, error = [], str(e)
        out[name] = {
            "description": found.description,
            "installed": error is None,
            "ids": ids,
            "error": error,
            "extra": found.extra,
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

    >>> env = make("panda:PandaReach-v3", seed=0, render_size=64, flatten=True)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, sorted(info)
    ((12,), ['agent_pos', 'is_success', 'success'])
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> sorted(info), sorted(info["factors"]), info["env_reward"] == reward
    (['agent_pos', 'env_reward', 'factors', 'is_success', 'success'], ['ctrl_cost', 'ee_to_target', 'progress'], True)
    >>> env.close()
    """
    if not isinstance(spec, str) or not spec:
        raise UnknownEnvError(f"env spec must be a non-empty string like 'panda:PandaReach-v3', got {spec!r}")
    env = _make(spec, seed, render_size, kwargs)
    env.make_kwargs = dict(kwargs)
    return env


def clone(env: RobotEnv, seed: int | None = None) -> RobotEnv:
    """A new, independent env made with the same spec and options as ``env`` (``make`` records them)."""
    size = (env.render_width, env.render_height)
    return make(env.spec_name, seed=seed, render_size=size, **env.make_kwargs)


def policy_env_kwargs(env: Any, env_kwargs: dict[str, Any], hindsight: bool = False) -> dict[str, Any]:
    """The kwargs a policy's envs of ``env`` (a spec, or an env given as is) are made with: dict observations of
    families that have them (panda) flattened, since learned and written rewards read flat observations, unless
    ``hindsight`` relabelling reads their goals."""
    kwargs = dict(env_kwargs)
    if isinstance(env, str) and env.partition(":")[0] == "panda":
        kwargs.setdefault("flatten", not hindsight)
    return kwargs


def _make(spec: str, seed: int | None, render_size: int | tuple[int, int], kwargs: dict[str, Any]) -> RobotEnv:
    prefix, sep, name = spec.partition(":")
    found = get_family(prefix) if sep else None
    if found is not None:
        valid = family_ids(prefix)
        if found.normalize is not None:
            name = found.normalize(name)
        _check_id(spec, name, valid)
        return found.make(name, seed=seed, render_size=render_size, **kwargs)
    if sep and spec not in gym.registry:
        raise UnknownEnvError(
            f"unknown env family {prefix!r} in spec {spec!r}; families are {', '.join(sorted(_families))}, "
            "or give a registered Gymnasium id"
        )
    if spec not in gym.registry:
        close = difflib.get_close_matches(spec, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownEnvError(
            f"unknown env spec {spec!r}.{hint} Use family:id with a family in {sorted(families())} "
            "(run `robofeedback envs` to list them) or a registered Gymnasium id"
        )
    return GymEnv(spec, seed=seed, render_size=render_size, **kwargs)
