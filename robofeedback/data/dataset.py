"""A feedback store's segments and labels as a Hugging Face dataset: Parquet shards, videos and a dataset card.

The folder :func:`export_dataset` writes opens without robofeedback::

    datasets.load_dataset("parquet", data_files={"train": "DIR/labels/*.parquet"})
    datasets.load_dataset("DIR", "segments")  # the card's YAML names the four configs

and holds:

- ``segments/``: one row per segment: its env spec, steps, observations (``obs``, one row of numbers per
  observation; a dict observation is its keys' arrays side by side in sorted key order, as Gymnasium flattens it),
  actions, the env's rewards, the agent's path, named reward factors, the JSON ``layout`` that gives every array its
  dtype and shape back, and its clip: ``video`` (a path under ``videos/``) or ``frames`` (images at a chosen size);
- ``labels/``: every label of every kind (preference, ranking, correction, factor ranking, violation), standing or
  taken back, with its provenance: ``source``, ``source_kind`` and ``annotator`` (the person or the model),
  ``prompt`` (for VLM and LLM labels that recorded theirs), time, note and the kind's ``value`` and ``payload``;
- ``queries/`` and ``runs/``: what was asked and each run's status;
- ``robofeedback_dataset.json``: the format and schema version, what was exported and by which robofeedback (version
  and commit), the env specs with their packages' versions;
- ``README.md``: the dataset card (fields, task, how it was collected, label counts per source, agreement between
  annotators, licence).

Numbers are stored as float64 lists, which hold every float32, float64 and integer (below 2**53) value exactly;
with the layout an import gives back the arrays as they were. :func:`import_dataset` brings a folder back into a
store through the store's own checks (:meth:`FeedbackStore.import_records`), all or nothing, with segment, query and
run names prefixed by a namespace, label ids renumbered and ``human:`` annotators namespaced (``human:alice`` of the
dataset ``lab-a`` becomes ``human:alice@lab-a``), so that one lab's alice is not another's. The store's annotator
secrets are in a table no export reads, and JSON fields whose keys name secrets (tokens, passwords, API keys) are
dropped on export.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import robofeedback
from robofeedback.config import run_metadata
from robofeedback.data.store import FeedbackStore, StoredSegment, StoreError, _pack, _unpack
from robofeedback.data.video import clip_name, read_video, write_video
from robofeedback.envs import package_versions
from robofeedback.envs.tasks import task_prompts

FORMAT = "robofeedback-feedback-dataset"
SCHEMA_VERSION = 1
META_FILE = "robofeedback_dataset.json"
CONFIGS = ("labels", "segments", "queries", "runs")
FRAMES = ("video", "images", "none")
SECRET_KEY = re.compile(r"secret|token|passw|api[_-]?key|credential|authorization", re.IGNORECASE)
NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,23}")
VIDEO_NAME = re.compile(r"videos/[A-Za-z0-9_.-]+\.mp4")


class DatasetError(ValueError):
    """A folder that is not a dataset this robofeedback can import; nothing was imported."""


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("datasets in Parquet need pyarrow: pip install 'robofeedback[share]'") from None
    return pa, pq


def _schemas(pa, frames: str) -> dict[str, Any]:
    """Each config's Arrow schema; the segments' clip column is ``video`` (a path) or ``frames`` (images)."""
    numbers, table = pa.list_(pa.float64()), pa.list_(pa.list_(pa.float64()))
    clip = (
        [pa.field("frames", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())])))]
        if frames == "images"
        else [pa.field("video", pa.string())]
    )
    return {
        "segments": pa.schema(
            [
                ("id", pa.string()),
                ("run", pa.string()),
                ("env_spec", pa.string()),
                ("start_step", pa.int64()),
                ("end_step", pa.int64()),
                ("obs", table),
                ("actions", table),
                ("env_rewards", numbers),
                ("agent_path", table),
                ("factors", pa.list_(pa.struct([("name", pa.string()), ("values", numbers)]))),
                ("layout", pa.string()),
                ("meta", pa.string()),
                ("created_at", pa.float64()),
                *clip,
            ]
        ),
        "labels": pa.schema(
            [
                ("id", pa.int64()),
                ("run", pa.string()),
                ("kind", pa.string()),
                ("query_id", pa.string()),
                ("segment_ids", pa.list_(pa.string())),
                ("value", pa.string()),
                ("payload", pa.string()),
                ("source", pa.string()),
                ("source_kind", pa.string()),
                ("annotator", pa.string()),
                ("prompt", pa.string()),
                ("note", pa.string()),
                ("created_at", pa.float64()),
                ("standing", pa.bool_()),
                ("taken_back_at", pa.float64()),
                ("taken_back_by", pa.string()),
                ("reason", pa.string()),
            ]
        ),
        "queries": pa.schema(
            [
                ("id", pa.string()),
                ("run", pa.string()),
                ("kind", pa.string()),
                ("segment_ids", pa.list_(pa.string())),
                ("assignee", pa.string()),
                ("status", pa.string()),
                ("meta", pa.string()),
                ("created_at", pa.float64()),
                ("closed_at", pa.float64()),
            ]
        ),
        "runs": pa.schema([("run", pa.string()), ("status", pa.string()), ("updated_at", pa.float64())]),
    }


def _hf_features(frames: str) -> dict[str, Any]:
    """The ``datasets`` features of the segments' clip column: image columns decode as images."""
    if frames != "images":
        return {}
    return {"frames": {"_type": "List", "feature": {"_type": "Image"}}}


# -- arrays <-> rows ---------------------------------------------------------------------------------------------


def _array_layout(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.kind not in "fiub":
        raise StoreError(f"only numeric arrays go into a dataset, got dtype {array.dtype}")
    return {"dtype": array.dtype.str, "shape": list(array.shape[1:])}


def _rows(array: np.ndarray) -> list[list[float]]:
    return np.asarray(array, dtype=np.float64).reshape(len(array), -1).tolist()


def _restore(rows: list, layout: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(layout["dtype"])
    if dtype.kind not in "fiub":
        raise ValueError(f"only numeric arrays come from a dataset, got dtype {dtype}")
    return np.asarray(rows, dtype=np.float64).reshape(-1, *layout["shape"]).astype(dtype)


def _obs_rows(obs: np.ndarray | dict[str, np.ndarray]) -> tuple[list[list[float]], dict[str, Any]]:
    """Observations as rows of numbers (a dict's keys side by side in sorted order, as Gymnasium flattens them) and
    the layout that undoes it (a dict's keys in their own order, each with its columns)."""
    if not isinstance(obs, dict):
        return _rows(obs), _array_layout(obs)
    widths = {k: int(np.prod(np.shape(obs[k])[1:], dtype=np.int64)) for k in obs}
    starts = dict(zip(sorted(obs), np.cumsum([0] + [widths[k] for k in sorted(obs)])[:-1].tolist(), strict=True))
    rows = np.concatenate([np.asarray(obs[k], np.float64).reshape(len(obs[k]), -1) for k in sorted(obs)], axis=1)
    keys = {k: {**_array_layout(obs[k]), "start": starts[k], "width": widths[k]} for k in obs}
    return rows.tolist(), {"keys": keys}


def _obs_from_rows(rows: list, layout: dict[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
    if "keys" not in layout:
        return _restore(rows, layout)
    table = np.asarray(rows, dtype=np.float64)
    return {k: _restore(table[:, p["start"] : p["start"] + p["width"]], p) for k, p in layout["keys"].items()}


# -- export ------------------------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What :func:`export_dataset` wrote: the folder, its rows per config, the clips and its size on disk."""

    path: Path
    rows: dict[str, int]
    clips: int
    missing_clips: list[str]
    bytes: int

    def __str__(self) -> str:
        missing = f"; {len(self.missing_clips)} segments' clips were missing" if self.missing_clips else ""
        return f"{self.path}: {json.dumps(self.rows)}, {self.clips} clips, {self.bytes / 1e6:.1f} MB{missing}"


def source_matches(source: str, patterns: Sequence[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(source, p) for p in patterns)


def _scrub(value: Any, rename: Callable[[str], str]) -> Any:
    """A JSON value with secret-named keys dropped and every annotator name (key or string) passed to ``rename``."""
    if isinstance(value, dict):
        return {rename(k): _scrub(v, rename) for k, v in value.items() if not SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [_scrub(v, rename) for v in value]
    return rename(value) if isinstance(value, str) else value


def _pseudonyms(labels: list[dict], queries: list[dict]) -> dict[str, str]:
    """``human:<name>`` -> ``human:annotator-<n>``, numbered by each person's first label (then query)."""
    people: list[str] = []
    for source in [lb["source"] for lb in labels] + [lb.get("taken_back_by") for lb in labels]:
        if source and source.startswith("human:") and source not in people:
            people.append(source)
    for query in queries:
        if query["assignee"] and query["assignee"].startswith("human:") and query["assignee"] not in people:
            people.append(query["assignee"])
    return {name: f"human:annotator-{i}" for i, name in enumerate(people, start=1)}


def _selection(store: FeedbackStore, runs: Sequence[str] | None, sources: Sequence[str] | None) -> dict[str, list]:
    """The rows an export holds: the labels of ``runs`` by ``sources``, and the queries, segments and runs they
    name; without a source filter, also every query and segment of those runs (nothing of theirs is lost)."""
    in_runs = (lambda row: True) if runs is None else (lambda row: row["run"] in runs)
    labels = [dict(r, standing=True) for r in store.table_rows("labels")]
    labels += [dict(r, standing=False) for r in store.table_rows("labels_taken_back")]
    labels = sorted(
        (r for r in labels if in_runs(r) and source_matches(r["source"], sources)),
        key=lambda r: (r["created_at"], r["id"]),
    )
    named_queries = {r["query_id"] for r in labels if r["query_id"]}
    queries = [q for q in store.table_rows("queries") if q["id"] in named_queries or (sources is None and in_runs(q))]
    named = {i for row in labels + queries for i in row["segment_ids"]}
    segments = [s for s in store.table_rows("segments") if s["id"] in named or (sources is None and in_runs(s))]
    used_runs = {row["run"] for row in labels + queries + segments}
    run_rows = [r for r in store.table_rows("runs") if r["run"] in used_runs]
    return {"labels": labels, "queries": queries, "segments": segments, "runs": run_rows}


def _clip(row: dict) -> np.ndarray | None:
    """A stored segment's frames, read from its video or its folder of frames; None when it has neither."""
    for path in (row["video_path"], row["frames_path"]):
        if path and Path(path).exists():
            return read_video(path)
    return None


def _images(frames: np.ndarray, size: int) -> list[dict[str, Any]]:
    out = []
    for frame in frames:
        small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        out.append({"bytes": png.tobytes(), "path": None})
    return out


def _video_name(segment_id: str) -> str:
    return "videos/" + clip_name(segment_id)


def _segment_row(row: dict, out: Path, frames: str, image_size: int, missing: list[str]) -> dict[str, Any]:
    obs, obs_layout = _obs_rows(_unpack(row["obs"]))
    actions, rewards, path = (_unpack(row[k]) for k in ("actions", "env_rewards", "agent_path"))
    factors = _unpack(row["factors"]) or {}
    layout = {
        "obs": obs_layout,
        "actions": _array_layout(actions),
        "env_rewards": _array_layout(rewards),
        "agent_path": None if path is None else _array_layout(path),
        "factors": {k: _array_layout(v) for k, v in factors.items()},
    }
    record = {
        "id": row["id"],
        "run": row["run"],
        "env_spec": row["env_spec"],
        "start_step": row["start_step"],
        "end_step": row["end_step"],
        "obs": obs,
        "actions": _rows(actions),
        "env_rewards": np.asarray(rewards, dtype=np.float64).tolist(),
        "agent_path": None if path is None else _rows(path),
        "factors": [{"name": k, "values": np.asarray(v, np.float64).tolist()} for k, v in factors.items()],
        "layout": json.dumps(layout),
        "meta": json.dumps(row["meta"]),
        "created_at": row["created_at"],
    }
    if frames == "none":
        record["video"] = None
        return record
    has_clip = any(row[k] and Path(row[k]).exists() for k in ("video_path", "frames_path"))
    if not has_clip and (row["video_path"] or row["frames_path"]):
        missing.append(row["id"])
    if frames == "images":
        clip = _clip(row) if has_clip else None
        record["frames"] = None if clip is None else _images(clip, image_size)
        return record
    name = _video_name(row["id"]) if has_clip else None
    if name is not None and row["video_path"] and Path(row["video_path"]).exists():
        shutil.copyfile(row["video_path"], out / name)
    elif name is not None:
        write_video(_clip(row), out / name, fps=10)
    record["video"] = name
    return record


def _label_row(row: dict, rename: Callable[[str], str]) -> dict[str, Any]:
    kind, _, who = row["source"].partition(":")
    payload = _scrub(row["payload"], rename)
    return {
        "id": row["id"],
        "run": row["run"],
        "kind": row["kind"],
        "query_id": row["query_id"],
        "segment_ids": list(row["segment_ids"]),
        "value": row["value"],
        "payload": json.dumps(payload),
        "source": rename(row["source"]),
        "source_kind": kind,
        "annotator": rename(row["source"]).partition(":")[2] if kind == "human" else who,
        "prompt": payload.get("prompt") if isinstance(payload.get("prompt"), str) else None,
        "note": row["note"],
        "created_at": row["created_at"],
        "standing": row["standing"],
        "taken_back_at": row.get("taken_back_at"),
        "taken_back_by": rename(row["taken_back_by"]) if row.get("taken_back_by") else None,
        "reason": row.get("reason"),
    }


def _write_config(pa, pq, out: Path, name: str, rows: list[dict], schema, shard_rows: int, features: dict) -> int:
    """``rows`` as Parquet shards ``<name>/train-0000i-of-0000n.parquet`` (one empty shard when there are none)."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    if features:
        info = {"info": {"features": {**_plain_features(pa, schema), **features}}}
        schema = schema.with_metadata({b"huggingface": json.dumps(info).encode()})
    shards = max(1, -(-len(rows) // shard_rows))
    for i in range(shards):
        part = rows[i * shard_rows : (i + 1) * shard_rows]
        table = pa.Table.from_pylist(part, schema=schema)
        pq.write_table(table, folder / f"train-{i:05d}-of-{shards:05d}.parquet", compression="zstd")
    return len(rows)


def _plain_features(pa, schema) -> dict[str, Any]:
    """``datasets`` features of the plain columns of an Arrow schema (strings, numbers, lists of them)."""

    def feature(t) -> dict[str, Any]:
        if pa.types.is_list(t):
            return {"_type": "List", "feature": feature(t.value_type)}
        if pa.types.is_struct(t):
            return {f.name: feature(f.type) for f in t}
        return {"_type": "Value", "dtype": {"int64": "int64", "double": "float64", "bool": "bool"}.get(str(t), str(t))}

    return {f.name: feature(f.type) for f in schema}


def export_dataset(
    store: FeedbackStore,
    out: str | Path,
    runs: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    frames: str = "video",
    image_size: int = 96,
    pseudonymise: bool = False,
    license: str = "unknown",
    name: str | None = None,
    shard_rows: int = 1000,
) -> ExportReport:
    """Write ``store``'s labels (of ``runs``, by sources matching any of the ``sources`` patterns, such as
    ``human:*``) with the segments, queries and runs they name as a dataset folder ``out`` (which must be new or
    empty). ``frames``: ``"video"`` copies each segment's clip to ``videos/``, ``"images"`` puts its frames in the
    rows as images of ``image_size`` pixels, ``"none"`` leaves clips out. ``pseudonymise`` replaces each person's
    name by ``annotator-<n>`` everywhere (notes are free text and are kept as written)."""
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    if not isinstance(shard_rows, int) or shard_rows < 1:
        raise ValueError(f"shard_rows must be a positive integer, got {shard_rows!r}")
    pa, pq = _pa()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: export into a new folder")
    name = name or out.name
    if not NAMESPACE.fullmatch(name):
        raise ValueError(f"a dataset name is 1 to 24 letters, digits, '.', '_' or '-', got {name!r}")
    chosen = _selection(store, runs, sources)
    if not chosen["labels"] and not chosen["segments"]:
        raise ValueError(f"nothing to export from {store!r} for runs={runs} and sources={sources}")
    mapping = _pseudonyms(chosen["labels"], chosen["queries"]) if pseudonymise else {}

    def rename(value: str) -> str:
        return mapping.get(value, value)

    created = not out.exists()
    try:
        (out / "videos").mkdir(parents=True, exist_ok=True)
        missing: list[str] = []
        rows = {
            "segments": [_segment_row(r, out, frames, image_size, missing) for r in chosen["segments"]],
            "labels": [_label_row(r, rename) for r in chosen["labels"]],
            "queries": [
                {
                    **q,
                    "segment_ids": list(q["segment_ids"]),
                    "assignee": rename(q["assignee"]) if q["assignee"] else None,
                    "meta": json.dumps(_scrub(q["meta"], rename)),
                }
                for q in chosen["queries"]
            ],
            "runs": [{**r, "status": json.dumps(_scrub(r["status"], rename))} for r in chosen["runs"]],
        }
        schemas = _schemas(pa, frames)
        counts = {
            config: _write_config(
                pa,
                pq,
                out,
                config,
                rows[config],
                schemas[config],
                shard_rows,
                _hf_features(frames) if config == "segments" else {},
            )
            for config in CONFIGS
        }
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "exported_at": time.time(),
            "robofeedback": robofeedback.__version__,
            "code": {k: v for k, v in run_metadata().items() if k in ("git_commit", "git_dirty")},
            "selection": {"runs": list(runs) if runs else None, "sources": list(sources) if sources else None},
            "frames": frames,
            "image_size": image_size if frames == "images" else None,
            "pseudonymised": bool(pseudonymise),
            "license": license,
            "rows": counts,
            "env_specs": {spec: package_versions(spec) for spec in sorted({s["env_spec"] for s in rows["segments"]})},
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        (out / "README.md").write_text(dataset_card(meta, rows))
        clips = sum(1 for s in rows["segments"] if s.get("video") or s.get("frames"))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        return ExportReport(out, counts, clips, missing, size)
    except BaseException:  # no half-written dataset is left behind
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


# -- the card ----------------------------------------------------------------------------------------------------


def agreement(labels: list[dict]) -> dict[str, Any]:
    """How often annotators agree on the pairs that more than one of them labelled: over the standing preference
    labels ("a", "b" or "equal"; skips left out) grouped by query (or by the pair when no query asked), each pair of
    sources that both labelled an item counts one comparison; returns the overall fraction, the number of
    comparisons and the fraction per pair of sources.

    >>> rows = [
    ...     {"kind": "preference", "standing": True, "query_id": "q1", "segment_ids": ["x", "y"], "value": "a",
    ...      "source": "human:ann"},
    ...     {"kind": "preference", "standing": True, "query_id": "q1", "segment_ids": ["x", "y"], "value": "a",
    ...      "source": "human:bob"},
    ...     {"kind": "preference", "standing": True, "query_id": None, "segment_ids": ["y", "x"], "value": "a",
    ...      "source": "script:oracle"},
    ...     {"kind": "preference", "standing": True, "query_id": None, "segment_ids": ["x", "y"], "value": "a",
    ...      "source": "human:ann"},
    ... ]
    >>> agreement(rows)["comparisons"], agreement(rows)["agreement"]
    (2, 0.5)
    """
    items: dict[Any, dict[str, str]] = defaultdict(dict)
    for row in labels:
        if row["kind"] != "preference" or not row["standing"] or row["value"] not in ("a", "b", "equal"):
            continue
        a, b = row["segment_ids"]
        value = row["value"] if a < b or row["value"] == "equal" else {"a": "b", "b": "a"}[row["value"]]
        items[row["query_id"] or (min(a, b), max(a, b))][row["source"]] = value
    per_pair: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for by_source in items.values():
        for s, t in combinations(sorted(by_source), 2):
            per_pair[(s, t)].append(by_source[s] == by_source[t])
    flat = [x for v in per_pair.values() for x in v]
    return {
        "agreement": round(float(np.mean(flat)), 4) if flat else None,
        "comparisons": len(flat),
        "pairs": {
            f"{s} / {t}": {"agreement": round(float(np.mean(v)), 4), "items": len(v)} for (s, t), v in per_pair.items()
        },
    }


FIELDS = {
    "segments": "id, run, env_spec, start_step, end_step; obs (T + 1 rows of numbers), actions (T rows), env_rewards "
    "(T), agent_path (T + 1 rows of x, y, z, or null), factors (name and T values each), layout (JSON: each array's "
    "dtype and shape, and a dict observation's keys), meta (JSON), created_at (Unix seconds), and the clip: video "
    "(a path under videos/) or frames (images)",
    "labels": "id, run, kind (preference, ranking, correction, factor_ranking, violation), query_id, segment_ids, "
    "value (a preference: a, b, equal or skip), payload (JSON: a ranking's order, best and worst; a correction's "
    "state, direction and t; a violation's state and t; a factor ranking's task, order, signs and margins), source "
    "(human:, vlm:, llm: or script:), source_kind, annotator (the person or the model), prompt, note, created_at, "
    "standing (false: taken back), taken_back_at, taken_back_by, reason",
    "queries": "id, run, kind, segment_ids, assignee, status (pending, answered, skipped, expired), meta (JSON), "
    "created_at, closed_at",
    "runs": "run, status (JSON: steps, labels, the latest evaluation, the reward model's agreement with each source), "
    "updated_at",
}


def dataset_card(meta: dict[str, Any], rows: dict[str, list[dict]]) -> str:
    """The dataset's README.md: YAML front matter naming the configs and licence, then what it holds and how it
    was collected."""
    yaml = [
        "---",
        f"license: {meta['license']}",
        "tags: [robotics, preference-learning, rlhf, robofeedback]",
        "configs:",
    ]
    for config in CONFIGS:
        yaml += [f"- config_name: {config}", f"  data_files: {config}/*.parquet"] + (
            ["  default: true"] if config == "labels" else []
        )
    yaml.append("---")
    labels = rows["labels"]
    by_source = Counter((lb["source"], lb["kind"]) for lb in labels if lb["standing"])
    taken_back = sum(1 for lb in labels if not lb["standing"])
    agree = agreement(labels)
    stated = {json.loads(r["status"]).get("task") for r in rows["runs"]} - {None}  # what people were told
    lines = [
        *yaml,
        "",
        f"# {meta['name']}: robot feedback exported by robofeedback",
        "",
        f"Segments of robot trajectories and the feedback given on them, exported from a robofeedback feedback store "
        f"(robofeedback {meta['robofeedback']}, commit {meta['code'].get('git_commit')}). Schema "
        f"`{FORMAT}` version {SCHEMA_VERSION}; `{META_FILE}` holds the machine-readable details.",
        "",
        "## Task",
        "",
        *[
            f"- `{spec}`"
            + (f": {task_prompts(spec)['task']}" if task_prompts(spec).get("task") else "")
            + f" ({', '.join(f'{k} {v}' for k, v in versions.items()) or 'versions not known'})"
            for spec, versions in meta["env_specs"].items()
        ],
        *([f"- as the annotators were told: {'; '.join(sorted(stated))}"] if stated else []),
        "",
        "## How it was collected",
        "",
        f"- runs: {', '.join(sorted({r['run'] for r in rows['runs']})) or 'none recorded'}",
        f"- selection: runs {meta['selection']['runs'] or 'all'}, sources {meta['selection']['sources'] or 'all'}",
        f"- {len(rows['segments'])} segments, {len(labels)} labels ({taken_back} of them taken back by their "
        f"annotator or replaced), {len(rows['queries'])} queries",
        f"- clips: {meta['frames']}" + (f" ({meta['image_size']} px images)" if meta["image_size"] else ""),
        f"- annotators {'pseudonymised' if meta['pseudonymised'] else 'named as in the store'}; notes are free text "
        "kept as written",
        "",
        "## Labels per source",
        "",
        "| source | kind | labels |",
        "|---|---|---|",
        *[f"| {s} | {k} | {n} |" for (s, k), n in sorted(by_source.items())],
        "",
        "## Agreement between annotators",
        "",
        (
            f"On the preference items more than one source labelled: {agree['agreement']} over "
            f"{agree['comparisons']} comparisons."
            if agree["comparisons"]
            else "No item was labelled by more than one source."
        ),
        "",
        *[f"- {pair}: {v['agreement']} over {v['items']} items" for pair, v in sorted(agree["pairs"].items())],
        "",
        "## Fields",
        "",
        *[f"- **{config}**: {FIELDS[config]}" for config in CONFIGS],
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        'labels = datasets.load_dataset("parquet", data_files={"train": "labels/*.parquet"})["train"]',
        'segments = datasets.load_dataset("parquet", data_files={"train": "segments/*.parquet"})["train"]',
        "```",
        "",
        "Into a robofeedback store: `robofeedback dataset import <folder> --store runs/feedback.db`.",
        "",
        f"## Licence\n\n{meta['license']}",
        "",
    ]
    return "\n".join(lines)


# -- import ------------------------------------------------------------------------------------------------------


@dataclass
class FeedbackDataset:
    """A dataset folder read back: its metadata and each config's rows as an export wrote them."""

    path: Path
    meta: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]]

    def segment_arrays(self, row: dict[str, Any]) -> dict[str, Any]:
        """A segment row's arrays as they were stored: obs (array or dict), actions, env_rewards, agent_path,
        factors."""
        layout = json.loads(row["layout"])
        return {
            "obs": _obs_from_rows(row["obs"], layout["obs"]),
            "actions": _restore(row["actions"], layout["actions"]),
            "env_rewards": _restore(row["env_rewards"], layout["env_rewards"]),
            "agent_path": None if layout["agent_path"] is None else _restore(row["agent_path"], layout["agent_path"]),
            "factors": {f["name"]: _restore(f["values"], layout["factors"][f["name"]]) for f in row["factors"]},
        }

    def segments(self) -> dict[str, StoredSegment]:
        """Every segment by id, as the store would give it (without a clip)."""
        out = {}
        for row in self.rows["segments"]:
            fields = {k: row[k] for k in ("id", "run", "env_spec", "start_step", "end_step", "created_at")}
            meta = json.loads(row["meta"])
            out[row["id"]] = StoredSegment(
                **fields, **self.segment_arrays(row), frames_path=None, video_path=None, meta=meta
            )
        return out


def read_dataset(path: str | Path) -> FeedbackDataset:
    """A dataset folder :func:`export_dataset` wrote, checked: its format and schema version, every Parquet file's
    columns, and that every clip a row names is in its ``videos/`` folder. DatasetError otherwise."""
    _, pq = _pa()
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DatasetError(f"{path} is not a robofeedback dataset: it has no {META_FILE}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{meta_path} is not JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(
            f"{path} is not a {FORMAT} folder (format {meta.get('format') if isinstance(meta, dict) else meta!r})"
        )
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatasetError(
            f"{path} has schema version {version!r}; this robofeedback reads version {SCHEMA_VERSION}"
            + (": upgrade robofeedback" if isinstance(version, int) and version > SCHEMA_VERSION else "")
        )
    if meta.get("frames") not in FRAMES:
        raise DatasetError(f"{meta_path}: frames must be one of {FRAMES}, got {meta.get('frames')!r}")
    import pyarrow as pa

    expected = _schemas(pa, meta["frames"])
    rows: dict[str, list[dict]] = {}
    for config in CONFIGS:
        files = sorted((path / config).glob("*.parquet"))
        if not files:
            raise DatasetError(f"{path} has no {config}/*.parquet")
        rows[config] = []
        for file in files:
            try:
                table = pq.read_table(file)
            except (OSError, ValueError) as e:
                raise DatasetError(f"{file} is not a Parquet file ({e})") from None
            want = expected[config]
            missing = [f.name for f in want if f.name not in table.schema.names]
            extra = [n for n in table.schema.names if n not in want.names]
            if missing or extra:
                raise DatasetError(
                    f"{file} is not a robofeedback {config} table: missing columns {missing}, unknown columns {extra}"
                )
            try:
                table = table.select(want.names).cast(want)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DatasetError(f"{file}: columns of the wrong type ({e})") from None
            rows[config] += table.to_pylist()
    absent = []
    for row in rows["segments"]:
        video = row.get("video")
        if video is None:
            continue
        if not VIDEO_NAME.fullmatch(video) or (path / video).is_symlink():
            raise DatasetError(f"segment {row['id']!r} names the clip {video!r}, not a file videos/<name>.mp4")
        if not (path / video).is_file():
            absent.append(video)
    if absent:
        raise DatasetError(f"{len(absent)} clips the segments name are missing from {path}: {absent[:5]}")
    return FeedbackDataset(path, meta, rows)


def _decoded(images: list[dict[str, Any]], segment_id: str) -> np.ndarray:
    """A segment's image column as RGB frames of one size; DatasetError for bytes that are not an image."""
    frames = []
    for image in images:
        frame = cv2.imdecode(np.frombuffer(image["bytes"] or b"", np.uint8), cv2.IMREAD_COLOR)
        if frame is None or (frames and frame.shape != frames[0].shape):
            raise DatasetError(f"segment {segment_id!r}: a frame that is not an image of the clip's size")
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def namespaced_source(source: str, namespace: str) -> str:
    """``human:alice`` -> ``human:alice@<namespace>``; models, scripts and names already namespaced stay.

    >>> namespaced_source("human:alice", "lab-a"), namespaced_source("vlm:gpt-4o", "lab-a")
    ('human:alice@lab-a', 'vlm:gpt-4o')
    """
    if source.startswith("human:") and "@" not in source:
        return f"{source}@{namespace}"
    return source


def _json_field(row: dict, key: str, where: str) -> Any:
    try:
        return json.loads(row[key]) if row[key] is not None else None
    except (json.JSONDecodeError, TypeError) as e:
        raise StoreError(f"{where}: {key} is not JSON ({e})") from None


def _store_records(data: FeedbackDataset, namespace: str, clips: dict[str, str]) -> Iterator[tuple[str, str, dict]]:
    """The dataset's rows as the store's import records, with ids, runs and people namespaced."""

    def ident(value: str) -> str:
        return f"{namespace}/{value}"

    def source(value: str | None) -> str | None:
        return None if value is None else namespaced_source(value, namespace)

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {source(k) if k.startswith("human:") else k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return source(value) if isinstance(value, str) and value.startswith("human:") else value

    for i, row in enumerate(data.rows["segments"]):
        where = f"{data.path}/segments row {i}"
        try:
            arrays = data.segment_arrays(row)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as e:
            raise StoreError(f"{where}: arrays that do not fit their layout ({e})") from None
        yield (
            where,
            "segments",
            {
                "id": ident(row["id"]),
                "run": ident(row["run"]),
                "env_spec": row["env_spec"],
                "start_step": row["start_step"],
                "end_step": row["end_step"],
                **{k: _pack(arrays[k]) for k in ("obs", "actions", "env_rewards", "agent_path")},
                "factors": _pack(arrays["factors"]) if arrays["factors"] else None,
                "frames_path": None,
                "video_path": clips.get(row["id"]),
                "meta": _json_field(row, "meta", where),
                "created_at": row["created_at"],
            },
        )
    for i, row in enumerate(data.rows["queries"]):
        where = f"{data.path}/queries row {i}"
        yield (
            where,
            "queries",
            {
                **row,
                "id": ident(row["id"]),
                "run": ident(row["run"]),
                "segment_ids": [ident(s) for s in row["segment_ids"]],
                "assignee": source(row["assignee"]),
                "meta": rename(_json_field(row, "meta", where)),
            },
        )
    for i, row in enumerate(data.rows["labels"]):
        where = f"{data.path}/labels row {i}"
        payload = rename(_json_field(row, "payload", where))
        if row["kind"] == "ranking" and isinstance(payload, dict):
            for key in ("order", "best", "worst"):
                value = payload.get(key)
                payload[key] = [ident(s) for s in value] if isinstance(value, list) else value and ident(value)
        record = {
            "id": row["id"],
            "run": ident(row["run"]),
            "kind": row["kind"],
            "query_id": row["query_id"] and ident(row["query_id"]),
            "segment_ids": [ident(s) for s in row["segment_ids"]],
            "value": row["value"],
            "payload": payload,
            "source": source(row["source"]),
            "note": row["note"],
            "created_at": row["created_at"],
        }
        if row["standing"]:
            yield where, "labels", record
        else:
            yield (
                where,
                "labels_taken_back",
                {
                    **record,
                    "taken_back_at": row["taken_back_at"],
                    "taken_back_by": source(row["taken_back_by"]),
                    "reason": row["reason"],
                },
            )
    for i, row in enumerate(data.rows["runs"]):
        where = f"{data.path}/runs row {i}"
        yield where, "runs", {**row, "run": ident(row["run"]), "status": rename(_json_field(row, "status", where))}


def import_dataset(
    store: FeedbackStore, path: str | Path, namespace: str | None = None, videos: str | Path | None = None
) -> dict[str, int]:
    """Add a dataset folder's rows to ``store``, all or nothing, through the store's own checks: segment, query and
    run names become ``<namespace>/<name>`` (default: the dataset's name), people ``human:<name>@<namespace>``, and
    label ids are renumbered. Clips are copied (or, for image columns, written as videos) to ``videos``/<namespace>
    (default: a ``videos`` folder next to a SQLite store's file) so the app can show them. Returns the rows added
    per table."""
    data = read_dataset(path)
    namespace = namespace or data.meta.get("name") or Path(path).name
    if not NAMESPACE.fullmatch(str(namespace)):
        raise ValueError(f"a namespace is 1 to 24 letters, digits, '.', '_' or '-', got {namespace!r}")
    has_clips = any(r.get("video") or r.get("frames") for r in data.rows["segments"])
    if videos is None and has_clips:
        if store.path is None:
            raise ValueError(f"{store!r} is not a file: give videos= (a folder for the dataset's clips)")
        videos = store.path.parent / "videos"
    folder = Path(videos) / namespace if has_clips else None
    if folder is not None and folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} already holds clips: was {namespace!r} imported before? Give another namespace"
        )
    clips: dict[str, str] = {}
    try:
        for row in data.rows["segments"]:
            target = folder / Path(_video_name(row["id"])).name if folder is not None else None
            if row.get("video"):
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data.path / row["video"], target)
            elif row.get("frames"):
                folder.mkdir(parents=True, exist_ok=True)
                write_video(_decoded(row["frames"], row["id"]), target, fps=10)
            else:
                continue
            clips[row["id"]] = str(target.resolve())
        return store.import_records(_store_records(data, namespace, clips), str(data.path), renumber_labels=True)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
