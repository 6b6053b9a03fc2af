"""Finding and merging the YAML configs the project ships in ``configs/``, and recording what ran."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import yaml


def config_dir() -> Path:
    """The ``configs/`` folder: ``$ROBOFEEDBACK_CONFIGS`` if set, else the one next to the package in the checkout."""
    env = os.environ.get("ROBOFEEDBACK_CONFIGS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not path.is_dir():
        raise FileNotFoundError(
            f"robofeedback's configs folder is not at {path}: install the package from its checkout "
            "(pip install -e .) or point ROBOFEEDBACK_CONFIGS at a copy of configs/"
        )
    return path


def assets_dir() -> Path:
    """The ``assets/`` folder: ``$ROBOFEEDBACK_ASSETS`` if set, else the one next to the package in the checkout."""
    env = os.environ.get("ROBOFEEDBACK_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "assets"


def require_positive_ints(**values: Any) -> None:
    """Raise a ValueError naming the first of ``values`` that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty dict, anything but a mapping is an error.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "run.yaml"
    ...     _ = path.write_text("seed: 3\\ntrain:\\n  lr: 0.001\\n")
    ...     config = load_yaml(path)
    >>> config
    {'seed': 3, 'train': {'lr': 0.001}}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    with open(path) as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in; nested mappings merge key by key.

    >>> deep_merge({"seed": 0, "train": {"lr": 3e-4, "batch": 256}}, {"train": {"lr": 1e-3}})
    {'seed': 0, 'train': {'lr': 0.001, 'batch': 256}}
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


PACKAGES = (
    "robofeedback",
    "torch",
    "open_clip_torch",
    "stable-baselines3",
    "gymnasium",
    "numpy",
    "panda-gym",
    "metaworld",
    "mujoco",
    "pybullet",
    "pybullet-envs-gymnasium",
)


def run_metadata() -> dict[str, Any]:
    """The code that produced a result: git commit (and whether the tree had changes), Python and package versions."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    commit, dirty = None, None
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"git_commit": commit, "git_dirty": dirty, "python": platform.python_version(), "packages": packages}
