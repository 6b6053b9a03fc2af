"""Trajectories and segments: what rollouts produce and what feedback is given on."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

Obs = np.ndarray | dict[str, np.ndarray]


def _slice_obs(obs: Obs, start: int, end: int) -> Obs:
    if isinstance(obs, dict):
        return {k: v[start:end] for k, v in obs.items()}
    return obs[start:end]


def obs_len(obs: Obs) -> int:
    """Number of time steps in a stacked observation array (or dict of arrays)."""
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def flat_obs(obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    """Observations as one float32 array; dict observations are concatenated in sorted key order (Gymnasium's)."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[k], dtype=np.float32) for k in sorted(obs)], axis=-1)
    return np.asarray(obs, dtype=np.float32)


def stack_obs(items: list) -> Obs:
    """Stack per-step observations (arrays or dicts of arrays) along a new first axis."""
    if isinstance(items[0], dict):
        return {k: np.stack([np.asarray(o[k]) for o in items]) for k in items[0]}
    return np.stack([np.asarray(o) for o in items])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Trajectory:
    """One episode (or part of one) of an env: T actions and the T + 1 observations around them.

    ``obs[t]`` is the observation before ``actions[t]``; ``env_rewards[t]``,
    ``infos[t]`` and ``factors[name][t]`` come from that step; ``agent_path[t]``
    is the agent's 3-D position at ``obs[t]`` (T + 1 rows). ``frames`` (T + 1
    rendered images, ``frames[t]`` showing ``obs[t]``) is present only when the
    rollout rendered. ``sim_states`` (T + 1 rows, the simulator's state at ``obs[t]``,
    :meth:`RobotEnv.sim_state`) is present when the rollout recorded them, so that
    frames can be rendered later in another env of the same spec. ``success[t]`` is
    the task's success after step t, where the env defines it.

    >>> infos = [{"factors": {"dist": 3.0 - t}, "success": t == 3} for t in range(4)]
    >>> traj = Trajectory(np.zeros((5, 2)), np.zeros((4, 1)), np.array([0.0, 0.0, 1.0, 1.0]), infos, np.zeros((5, 3)))
    >>> len(traj), traj.env_return, traj.factors["dist"], traj.success
    (4, 2.0, array([3., 2., 1., 0.]), array([False, False, False,  True]))
    """

    obs: Obs
    actions: np.ndarray
    env_rewards: np.ndarray
    infos: list[dict]
    agent_path: np.ndarray
    terminated: bool = False
    truncated: bool = False
    frames: np.ndarray | None = None
    env_spec: str = ""
    seed: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sim_states: np.ndarray | None = None

    def __post_init__(self) -> None:
        t = len(self.actions)
        if obs_len(self.obs) != t + 1:
            raise ValueError(f"a trajectory of {t} actions needs {t + 1} observations, got {obs_len(self.obs)}")
        if len(self.env_rewards) != t or len(self.infos) != t:
            raise ValueError(
                f"env_rewards ({len(self.env_rewards)}) and infos ({len(self.infos)}) "
                f"must have one entry per action ({t})"
            )
        if len(self.agent_path) != t + 1:
            raise ValueError(f"agent_path needs {t + 1} positions, got {len(self.agent_path)}")
        if self.frames is not None and len(self.frames) != t + 1:
            raise ValueError(f"frames need {t + 1} images (one per observation), got {len(self.frames)}")
        if self.sim_states is not None and len(self.sim_states) != t + 1:
            raise ValueError(f"sim_states need {t + 1} rows (one per observation), got {len(self.sim_states)}")

    def __len__(self) -> int:
        return len(self.actions)

    @cached_property
    def factors(self) -> dict[str, np.ndarray]:
        """Per-step named reward factors, ``{name: (T,) array}`` (computed once from ``infos``)."""
        names: list[str] = []
        for info in self.infos:
            names.extend(k for k in info.get("factors", {}) if k not in names)
        return {
            n: np.array([info.get("factors", {}).get(n, np.nan) for info in self.infos], dtype=np.float64)
            for n in names
        }

    @property
    def success(self) -> np.ndarray | None:
        """Per-step success flags, or None where the env does not define success."""
        if not self.infos or "success" not in self.infos[-1]:
            return None
        return np.array([bool(info.get("success", False)) for info in self.infos])

    @property
    def env_return(self) -> float:
        return float(np.sum(self.env_rewards))

    def segment(self, start: int, end: int) -> Segment:
        """Steps ``start`` .. ``end - 1`` of this trajectory."""
        return Segment(self, start, end)

    def save(self, path: str | Path) -> Path:
        """Write to a compressed ``.npz``; infos are stored as JSON (numpy values become lists and numbers)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "actions": np.asarray(self.actions),
            "env_rewards": np.asarray(self.env_rewards),
            "agent_path": np.asarray(self.agent_path),
        }
        if isinstance(self.obs, dict):
            arrays.update({f"obs/{k}": v for k, v in self.obs.items()})
        else:
            arrays["obs"] = np.asarray(self.obs)
        if self.frames is not None:
            arrays["frames"] = np.asarray(self.frames)
        if self.sim_states is not None:
            arrays["sim_states"] = np.asarray(self.sim_states)
        meta = {
            "id": self.id,
            "env_spec": self.env_spec,
            "seed": self.seed,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "infos": _jsonable(self.infos),
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if "obs" in data.files:
                obs: Obs = data["obs"]
            else:
                obs = {k[len("obs/") :]: data[k] for k in data.files if k.startswith("obs/")}
            return cls(
                obs=obs,
                actions=data["actions"],
                env_rewards=data["env_rewards"],
                infos=meta["infos"],
                agent_path=data["agent_path"],
                terminated=meta["terminated"],
                truncated=meta["truncated"],
                frames=data["frames"] if "frames" in data.files else None,
                env_spec=meta["env_spec"],
                seed=meta["seed"],
                id=meta["id"],
                sim_states=data["sim_states"] if "sim_states" in data.files else None,
            )


@dataclass
class Segment:
    """Steps ``start`` .. ``end - 1`` of a trajectory, the unit that preferences compare.

    Array views share memory with the trajectory; ``obs``, ``agent_path`` and
    ``frames`` cover the ``end - start + 1`` observations around those steps. ``rendered`` holds frames rendered
    for this segment alone (from the trajectory's ``sim_states``), which ``frames`` returns when the trajectory has
    none.

    >>> obs = np.arange(10.0).reshape(5, 2)
    >>> traj = Trajectory(obs, np.zeros((4, 1)), np.array([0.0, 0.5, 1.0, 1.0]), [{}] * 4, np.zeros((5, 3)), id="ep0")
    >>> segment = traj.segment(1, 3)
    >>> segment.id, len(segment), segment.env_return
    ('ep0:1-3', 2, 1.5)
    >>> segment.obs  # the observations around its steps: one more than the steps
    array([[2., 3.],
           [4., 5.],
           [6., 7.]])
    """

    trajectory: Trajectory
    start: int
    end: int
    rendered: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= len(self.trajectory):
            raise ValueError(
                f"segment [{self.start}, {self.end}) is not inside a trajectory of {len(self.trajectory)} steps"
            )

    @property
    def id(self) -> str:
        return f"{self.trajectory.id}:{self.start}-{self.end}"

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def obs(self) -> Obs:
        return _slice_obs(self.trajectory.obs, self.start, self.end + 1)

    @property
    def actions(self) -> np.ndarray:
        return self.trajectory.actions[self.start : self.end]

    @property
    def env_rewards(self) -> np.ndarray:
        return self.trajectory.env_rewards[self.start : self.end]

    @property
    def infos(self) -> list[dict]:
        return self.trajectory.infos[self.start : self.end]

    @property
    def agent_path(self) -> np.ndarray:
        return self.trajectory.agent_path[self.start : self.end + 1]

    @property
    def frames(self) -> np.ndarray | None:
        frames = self.trajectory.frames
        return self.rendered if frames is None else frames[self.start : self.end + 1]

    @property
    def sim_states(self) -> np.ndarray | None:
        states = self.trajectory.sim_states
        return None if states is None else states[self.start : self.end + 1]

    @property
    def factors(self) -> dict[str, np.ndarray]:
        return {k: v[self.start : self.end] for k, v in self.trajectory.factors.items()}

    @property
    def env_return(self) -> float:
        return float(np.sum(self.env_rewards))
