"""Trajectories as Minari datasets, and Minari datasets as trajectories to label.

:func:`write_minari` stores robofeedback trajectories as a Minari dataset (Minari's ``arrow`` format, which needs
no h5py) that ``minari.load_dataset`` reads offline from ``$MINARI_DATASETS_PATH`` (default
``~/.minari/datasets``). A plain Gymnasium id is recorded as the dataset's env spec, so Minari's
``recover_environment()`` works; robofeedback's own specs (``panda:...``, ``metaworld:...``, ``bullet:...``) are
not Gymnasium ids, so they go into the dataset's metadata under ``"robofeedback"`` with the options the env was made
with, the simulator packages' versions and robofeedback's version and commit, and :func:`recover_env` makes the env
from them. Per step the infos keep what robofeedback reads (``success``, ``env_reward``, ``factors`` and the env's
other numeric infos) and two arrays of their own, ``agent_path`` and ``sim_state``, so that :func:`read_minari`
rebuilds each :class:`Trajectory` exactly (rendered frames are not stored: the simulator states render them again).
Like Minari's own ``DataCollector``, infos have T + 1 rows: row 0 belongs to the reset (where robofeedback's
trajectories keep no info it holds NaN, False or 0), row t + 1 to step t.

:func:`read_minari` also reads datasets made by others (their episodes get NaN agent positions and, where the
dataset records a Gymnasium env, its id as env spec), and :func:`queue_minari` cuts their episodes into segments and
puts preference queries on them into a feedback store, for people to label in the app.

Minari is an optional extra: ``pip install 'robofeedback[share]'``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import robofeedback
from robofeedback.config import run_metadata
from robofeedback.data.recorder import ClipRenderer
from robofeedback.data.store import FeedbackStore
from robofeedback.data.trajectory import Obs, Segment, Trajectory
from robofeedback.data.video import clip_name, write_video
from robofeedback.envs import RobotEnv, get_family, make, package_versions
from robofeedback.envs.tasks import task_prompts

METADATA_KEY = "robofeedback"  # the dataset metadata key (and episode metadata prefix) robofeedback writes
PATH_KEY, STATE_KEY = "agent_path", "sim_state"  # the per-step info arrays robofeedback adds


def _minari():
    try:
        import minari
    except ImportError as e:
        raise ImportError(f"Minari datasets need minari ({e}): pip install 'robofeedback[share]'") from e
    return minari


def check_dataset_id(dataset_id: str) -> None:
    """Raise a ValueError unless ``dataset_id`` is a well-formed Minari id (``namespace/name-vN``) that no dataset
    under ``$MINARI_DATASETS_PATH`` has yet (Minari never overwrites one)."""
    _minari()
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage import get_dataset_path

    parse_dataset_id(dataset_id)
    path = get_dataset_path(dataset_id)
    if path.exists():
        raise ValueError(f"a Minari dataset {dataset_id!r} already exists at {path}: choose another name or version")


def is_gym_id(spec: str) -> bool:
    """Whether ``spec`` is a plain registered Gymnasium id (which Minari can recreate), not a robofeedback family's.

    >>> is_gym_id("Pendulum-v1"), is_gym_id("panda:PandaReach-v3")
    (True, False)
    """
    prefix, sep, _ = spec.partition(":")
    return not (sep and get_family(prefix) is not None) and spec in gym.registry


def _requirements(spec: str) -> list[str]:
    """Pip requirements, pinned to the installed versions, of robofeedback and the packages that make ``spec``'s
    env."""
    return [f"robofeedback=={robofeedback.__version__}"] + [f"{k}=={v}" for k, v in package_versions(spec).items()]


def _space_of(values: np.ndarray, what: str) -> spaces.Space:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return spaces.Box(-np.inf, np.inf, values.shape[1:], values.dtype)
    if values.dtype.kind in "iu" and values.ndim == 1:
        return spaces.Discrete(int(values.max()) + 1)
    raise ValueError(
        f"cannot infer a space for {what} of dtype {values.dtype} and shape {values.shape[1:]}: pass env= or the space"
    )


def _infer_observation_space(obs: Obs) -> spaces.Space:
    if isinstance(obs, dict):
        return spaces.Dict({k: _space_of(v, f"observation {k!r}") for k, v in obs.items()})
    return _space_of(obs, "observations")


def _cast_obs(obs: Obs, space: spaces.Space) -> Obs:
    if isinstance(obs, dict):
        if not isinstance(space, spaces.Dict) or set(obs) != set(space.spaces):
            raise ValueError(f"dict observations with keys {sorted(obs)} do not fit the observation space {space}")
        return {k: np.asarray(v, dtype=space[k].dtype) for k, v in obs.items()}
    return np.asarray(obs, dtype=space.dtype)


def _kind(value: Any) -> str | tuple | None:
    """What a per-step info value is, for checking that every step has the same: None where Minari cannot keep it."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size:
        return ("array", value.dtype.str, value.shape) if value.ndim else _kind(value.item())
    if isinstance(value, dict) and value:
        kinds = {k: _kind(v) for k, v in value.items()}
        return None if None in kinds.values() else ("dict", tuple(sorted(kinds.items())))
    return None


def _info_columns(infos: list[dict]) -> dict[str, Any]:
    """The info keys that every step has with the same kind of value, as T + 1 rows (row 0 filled in)."""
    if not infos:
        return {}
    columns = {}
    for key, value in infos[0].items():
        kind = _kind(value)
        if kind is not None and key not in (PATH_KEY, STATE_KEY) and all(_kind(i.get(key)) == kind for i in infos):
            columns[key] = _column([i[key] for i in infos], kind)
    return columns


def _column(values: list, kind: str | tuple) -> Any:
    if kind == "bool":
        return [False, *(bool(v) for v in values)]
    if kind == "int":
        return [0, *(int(v) for v in values)]
    if kind == "float":
        return [float("nan"), *(float(v) for v in values)]
    if kind[0] == "array":
        stacked = np.stack(values)
        first = np.full_like(stacked[:1], np.nan) if stacked.dtype.kind == "f" else np.zeros_like(stacked[:1])
        return np.concatenate([first, stacked])
    return {k: _column([v[k] for v in values], sub) for k, sub in kind[1]}


def _episode_buffer(index: int, trajectory: Trajectory, observation_space: spaces.Space, action_space: spaces.Space):
    from minari.data_collector import EpisodeBuffer

    infos = _info_columns(trajectory.infos)
    infos[PATH_KEY] = np.asarray(trajectory.agent_path, dtype=np.float64)
    if trajectory.sim_states is not None:
        infos[STATE_KEY] = np.asarray(trajectory.sim_states, dtype=np.float64)
    n = len(trajectory)
    return EpisodeBuffer(
        id=index,
        seed=trajectory.seed,
        observations=_cast_obs(trajectory.obs, observation_space),
        actions=np.asarray(trajectory.actions, dtype=action_space.dtype),
        rewards=[float(r) for r in trajectory.env_rewards],
        terminations=[False] * (n - 1) + [bool(trajectory.terminated)],
        truncations=[False] * (n - 1) + [bool(trajectory.truncated)],
        infos=infos,
    )


def _jsonable_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The options that JSON can hold, and the names of those it cannot (callables, objects)."""
    kept, left = {}, []
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except TypeError:
            left.append(key)
        else:
            kept[key] = value
    return kept, left


def write_minari(
    trajectories: Sequence[Trajectory],
    dataset_id: str,
    env: gym.Env | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    description: str | None = None,
    algorithm_name: str | None = None,
    author: str | None = None,
    author_email: str | None = None,
    code_permalink: str | None = None,
    make_kwargs: dict[str, Any] | None = None,
):
    """Write ``trajectories`` (of one env spec) as the Minari dataset ``dataset_id`` (``namespace/name-vN``) under
    ``$MINARI_DATASETS_PATH``; returns the ``MinariDataset``.

    The spaces come from ``env`` when it is given (or are passed as they are), else are inferred from the arrays: a
    Box per float array (a Dict of them for dict observations), Discrete for integer actions; observations and
    actions are stored in their spaces' dtypes. ``env``'s ``make`` options (without an env, ``make_kwargs``) are
    recorded too, so that :func:`recover_env` makes the same env. ``description`` defaults to one naming the spec
    and how to recreate its env; the other arguments are Minari's dataset fields.
    """
    minari = _minari()
    if not trajectories:
        raise ValueError(f"no trajectories to write to the Minari dataset {dataset_id!r}")
    check_dataset_id(dataset_id)
    specs = sorted({t.env_spec for t in trajectories})
    if len(specs) != 1:
        raise ValueError(f"a Minari dataset holds the episodes of one env, got trajectories of {specs}")
    spec = getattr(env, "spec_name", None) or specs[0]
    if specs[0] and spec != specs[0]:
        raise ValueError(f"the trajectories come from {specs[0]}, not from the env given ({spec})")
    observation_space = observation_space or (
        env.observation_space if env is not None else _infer_observation_space(trajectories[0].obs)
    )
    action_space = action_space or (
        env.action_space if env is not None else _space_of(trajectories[0].actions, "actions")
    )
    gym_spec = None
    if spec and is_gym_id(spec):
        raw = env.spec if env is not None and env.spec is not None else gym.spec(spec)
        gym_spec = replace(raw, additional_wrappers=())  # robofeedback's wrapper is not Gymnasium's to make
    kwargs, unrecorded = _jsonable_kwargs(getattr(env, "make_kwargs", make_kwargs or {}))
    run = run_metadata()
    recorded = {
        "env_spec": spec,
        "make_kwargs": kwargs,
        "unrecorded_make_kwargs": unrecorded,
        "version": robofeedback.__version__,
        "git_commit": run["git_commit"],
        "git_dirty": run["git_dirty"],
        "packages": run["packages"],
    }
    if description is None:
        how = (
            "Minari's recover_environment() makes the Gymnasium env"
            if gym_spec is not None
            else f"Minari cannot recreate it (not a Gymnasium id): robofeedback.data.minari_io.recover_env(dataset) "
            f"calls robofeedback.envs.make({spec!r})"
        )
        description = f"{len(trajectories)} episodes of {spec or 'an unnamed env'} recorded by robofeedback. {how}."
    buffers = [_episode_buffer(i, t, observation_space, action_space) for i, t in enumerate(trajectories)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None)", category=UserWarning)
        dataset = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=gym_spec,
            observation_space=observation_space,
            action_space=action_space,
            algorithm_name=algorithm_name,
            author=author,
            author_email=author_email,
            code_permalink=code_permalink,
            description=description,
            requirements=_requirements(spec),
            data_format="arrow",
        )
    dataset.storage.update_metadata({METADATA_KEY: recorded})
    dataset.storage.update_episode_metadata(
        [{f"{METADATA_KEY}_id": t.id} for t in trajectories], range(len(trajectories))
    )
    return dataset


def load(dataset: Any):
    """A ``MinariDataset`` from a dataset, its id (under ``$MINARI_DATASETS_PATH``) or its folder."""
    minari = _minari()
    if isinstance(dataset, minari.MinariDataset):
        return dataset
    path = Path(dataset)
    for folder in (path / "data", path):
        if (folder / "metadata.json").is_file():
            return minari.MinariDataset(folder)
    try:
        return minari.load_dataset(str(dataset))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no Minari dataset {dataset!r}: give a dataset id under $MINARI_DATASETS_PATH "
            f"({minari.storage.get_dataset_path()}) or a dataset's folder"
        ) from None


def _columns(value: Any) -> Any:
    """An info column as Minari decodes it, with nested dicts (which its arrow format returns as an array of dicts)
    made a dict of columns again."""
    if isinstance(value, dict):
        return {k: _columns(v) for k, v in value.items()}
    value = np.asarray(value)
    if value.dtype == object and len(value) and isinstance(value[0], dict):
        return {k: _columns(np.array([row[k] for row in value])) for k in value[0]}
    return value


def _step_value(column: Any, t: int) -> Any:
    if isinstance(column, dict):
        return {k: _step_value(v, t) for k, v in column.items()}
    value = column[t]
    return value.item() if isinstance(value, np.generic) else value


def _trajectory(episode, metadata: dict, recorded: dict | None, env_spec: str, dataset_id: str) -> Trajectory:
    n = len(episode.actions)
    infos = {k: _columns(v) for k, v in (episode.infos or {}).items()}
    path = infos.pop(PATH_KEY, None) if recorded is not None else None
    states = infos.pop(STATE_KEY, None) if recorded is not None else None
    infos = {k: v for k, v in infos.items() if _rows(v) == n + 1}
    obs = episode.observations
    if isinstance(obs, tuple):
        raise ValueError(f"dataset {dataset_id!r} has Tuple observations, which trajectories do not hold")
    return Trajectory(
        obs=dict(obs) if isinstance(obs, dict) else np.asarray(obs),
        actions=np.asarray(episode.actions),
        env_rewards=np.asarray(episode.rewards, dtype=np.float64),
        infos=[{k: _step_value(v, t + 1) for k, v in infos.items()} for t in range(n)],
        agent_path=np.asarray(path, dtype=np.float64) if path is not None else np.full((n + 1, 3), np.nan),
        terminated=bool(n and episode.terminations[-1]),
        truncated=bool(n and episode.truncations[-1]),
        env_spec=env_spec,
        seed=metadata.get("seed"),
        id=metadata.get(f"{METADATA_KEY}_id") or f"{dataset_id}/ep{episode.id}",
        sim_states=np.asarray(states, dtype=np.float64) if states is not None else None,
    )


def _rows(column: Any) -> int | None:
    if isinstance(column, dict):
        counts = {_rows(v) for v in column.values()}
        return counts.pop() if len(counts) == 1 else None
    return len(column)


def env_spec_of(dataset: Any) -> str | None:
    """The env spec a Minari dataset's episodes came from: robofeedback's recorded one, else the Gymnasium id the
    dataset records, else None."""
    dataset = load(dataset)
    recorded = dataset.storage.metadata.get(METADATA_KEY)
    if recorded:
        return recorded["env_spec"]
    return dataset.env_spec.id if dataset.env_spec is not None else None


def read_minari(dataset: Any, episodes: Sequence[int] | None = None) -> list[Trajectory]:
    """The episodes of a Minari dataset (a ``MinariDataset``, its id or its folder) as trajectories: all of them, or
    those at the indices ``episodes``.

    Datasets that :func:`write_minari` wrote come back exactly as they were written (ids, seeds, agent paths,
    simulator states and infos, frames apart). Others get NaN agent positions, their infos (the step rows of every
    info column with one row per observation) and, where the dataset records a Gymnasium env, its id as env spec.
    Episodes without steps are left out (a trajectory has at least one).
    """
    dataset = load(dataset)
    recorded = dataset.storage.metadata.get(METADATA_KEY)
    env_spec = env_spec_of(dataset) or ""
    indices = list(range(dataset.total_episodes)) if episodes is None else [int(i) for i in episodes]
    bad = [i for i in indices if not 0 <= i < dataset.total_episodes]
    if bad:
        raise ValueError(f"dataset {dataset.id!r} has {dataset.total_episodes} episodes, no episode {bad[0]}")
    metadata = list(dataset.storage.get_episode_metadata(indices))
    return [
        _trajectory(episode, meta, recorded, env_spec, dataset.id)
        for episode, meta in zip(dataset.iterate_episodes(indices), metadata, strict=True)
        if len(episode.actions)
    ]


def recover_env(dataset: Any, seed: int | None = None, render_size: int | tuple[int, int] = 224, **kwargs: Any):
    """The robofeedback env a Minari dataset's episodes came from: ``robofeedback.envs.make`` of the spec and options
    robofeedback recorded, or of the Gymnasium id the dataset records (datasets made by others); ``kwargs`` add to
    or replace the recorded options."""
    dataset = load(dataset)
    recorded = dataset.storage.metadata.get(METADATA_KEY)
    if recorded:
        if recorded.get("unrecorded_make_kwargs"):
            warnings.warn(
                f"dataset {dataset.id!r} was made with options JSON cannot hold "
                f"({', '.join(recorded['unrecorded_make_kwargs'])}): pass them to recover_env yourself",
                stacklevel=2,
            )
        return make(recorded["env_spec"], seed=seed, render_size=render_size, **{**recorded["make_kwargs"], **kwargs})
    if dataset.env_spec is not None:
        options = {k: v for k, v in dataset.env_spec.kwargs.items() if k != "render_mode"}
        return make(dataset.env_spec.id, seed=seed, render_size=render_size, **{**options, **kwargs})
    raise ValueError(
        f"dataset {dataset.id!r} records no env: neither robofeedback's spec nor a Gymnasium env spec, so neither "
        "Minari nor robofeedback can recreate it; make the env yourself with robofeedback.envs.make(spec)"
    )


def _pairs(
    trajectories: list[Trajectory], length: int, n: int, rng: np.random.Generator
) -> list[tuple[Segment, Segment]]:
    """``n`` pairs of distinct segments of ``length`` steps (an episode that ended sooner gives one, its whole
    length), each drawn uniformly over all the places segments fit."""
    windows = [(t, s) for t in trajectories for s in range(max(len(t) - length, 0) + 1)]
    if len(windows) < 2:
        raise ValueError(f"the episodes hold {len(windows)} segment of {length} steps: too few to pair")
    pairs = []
    for _ in range(n):
        a, b = rng.choice(len(windows), size=2, replace=False)
        pairs.append(tuple(t.segment(s, min(s + length, len(t))) for t, s in (windows[a], windows[b])))
    return pairs


def _clip_frames(segment: Segment, renderer: ClipRenderer | None, env: RobotEnv | None) -> np.ndarray:
    if segment.frames is not None:
        return segment.frames
    if segment.sim_states is None:
        raise ValueError(
            f"segment {segment.id} has neither frames nor simulator states, so no video can be made of it; "
            "queue it without video_dir for sources that read numbers rather than watch"
        )
    if env is not None:
        return np.stack([env.render_state(s, p) for s, p in zip(segment.sim_states, segment.agent_path, strict=True)])
    return renderer.render(segment)


def queue_minari(
    store: FeedbackStore,
    dataset: Any,
    run: str = "minari",
    segment_length: int = 50,
    pairs: int = 20,
    seed: int = 0,
    video_dir: str | Path | None = None,
    env: RobotEnv | None = None,
    render_size: int | tuple[int, int] = 224,
    episodes: Sequence[int] | None = None,
) -> list[str]:
    """Put ``pairs`` preference queries on ``segment_length``-step segments of a Minari dataset's episodes into
    ``store`` under ``run``, for people to label in the app; returns the query ids.

    With ``video_dir`` each segment gets a video there, which the app shows: from the simulator states that
    robofeedback's datasets hold, rendered by ``env`` (reset already) or by an env that :func:`recover_env`'s spec
    and options make at ``render_size``. Segments without states cannot be shown, which is an error then; without
    ``video_dir`` they are queued as numbers only (for scripted teachers and judges that read them).
    """
    if segment_length <= 0 or pairs <= 0:
        raise ValueError(f"segment_length and pairs must be positive, got {segment_length} and {pairs}")
    minari_dataset = load(dataset)
    trajectories = read_minari(minari_dataset, episodes)
    chosen = _pairs(trajectories, segment_length, pairs, np.random.default_rng(seed))
    segments = list({s.id: s for pair in chosen for s in pair}.values())
    videos = None
    if video_dir is not None:
        video_dir = Path(video_dir)
        recorded = minari_dataset.storage.metadata.get(METADATA_KEY) or {}
        renderer = None
        if env is None:
            renderer = ClipRenderer(trajectories[0].env_spec, recorded.get("make_kwargs"), render_size)
        try:
            videos = []
            for segment in segments:
                frames = _clip_frames(segment, renderer, env)
                videos.append(str(write_video(frames, video_dir / clip_name(segment.id), fps=10).resolve()))
        finally:
            if renderer is not None:
                renderer.close()
    meta = [{"minari_dataset": minari_dataset.id} for _ in segments]
    store.add_segments(segments, run=run, video_paths=videos, meta=meta)
    spec = trajectories[0].env_spec
    store.set_run_status(run, env=spec, task=task_prompts(spec).get("task") or f"{minari_dataset.id} ({spec})")
    return [store.add_query("preference", [a.id, b.id], run=run) for a, b in chosen]
