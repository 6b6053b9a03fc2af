"""Sharing a feedback store: the time and size of a dataset export and import for a store of labels with clips.

Run ``python -m robofeedback.bench.share --labels 2000 --out runs/bench/share``. It builds a store the way a run
fills one: random-action episodes of panda reach rendered at ``--render-size`` pixels, segments of 25 steps each
with its clip as an mp4, and ``--labels`` preference queries between random pairs of them answered by the scripted
Oracle (the true segment return). It then exports it with clips as video files and as image columns, imports the
video export into a new store, and prints and writes (``results.json``) each step's wall time and size beside the
store's own file and its JSONL export.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from robofeedback.config import run_metadata
from robofeedback.data import collect, write_video
from robofeedback.data.dataset import export_dataset, import_dataset
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.feedback.teachers import oracle

SEGMENT = 25


def _bytes(*paths: Path) -> int:
    """Bytes on disk of files and folders (a SQLite store's file with its write-ahead log)."""
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def build_store(folder: Path, labels: int, episodes: int, render_size: int, seed: int) -> FeedbackStore:
    """A store of ``episodes`` rendered random episodes cut into 25-step segments (each with its mp4) and ``labels``
    Oracle-answered preference queries on random pairs of them."""
    env = make("panda:PandaReachDense-v3", seed=seed, render_size=render_size, terminate_on_success=False)
    trajectories = collect(env, None, n_episodes=episodes, render=True, seed=seed)
    env.close()
    segments = [t.segment(s, s + SEGMENT) for t in trajectories for s in range(0, len(t) - SEGMENT + 1, 5)]
    videos = [
        str(write_video(s.frames, folder / "clips" / f"{i:05d}.mp4", fps=10).resolve()) for i, s in enumerate(segments)
    ]
    store = FeedbackStore(folder / "feedback.db")
    ids = store.add_segments(segments, run="bench", video_paths=videos)
    by_id = dict(zip(ids, segments, strict=True))
    rng = np.random.default_rng(seed)
    teacher = oracle()
    for _ in range(labels):
        a, b = rng.choice(len(ids), size=2, replace=False)
        query = store.add_query("preference", [ids[a], ids[b]], run="bench")
        (value,) = teacher.label_many([(by_id[ids[a]], by_id[ids[b]])])
        store.answer_query(query, teacher.source, value=value)
    return store


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - start, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=2000, help="preference labels in the store (default 2000)")
    parser.add_argument("--episodes", type=int, default=40, help="rendered episodes cut into segments (default 40)")
    parser.add_argument("--render-size", type=int, default=96, help="clip frame size in pixels (default 96)")
    parser.add_argument("--image-size", type=int, default=64, help="image-column frame size (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench/share", help="folder for the stores, exports and results.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a new --out")
    store, built = _timed(build_store, out / "lab", args.labels, args.episodes, args.render_size, args.seed)
    counts = store.counts()
    jsonl, jsonl_s = _timed(store.export_jsonl, out / "export.jsonl")
    video, video_s = _timed(export_dataset, store, out / "dataset-video", name="bench")
    images, images_s = _timed(
        export_dataset, store, out / "dataset-images", frames="images", image_size=args.image_size, name="bench"
    )
    other = FeedbackStore(out / "other" / "feedback.db")
    added, import_s = _timed(import_dataset, other, out / "dataset-video")
    results = {
        "store": {**counts, "build_s": built, "bytes": _bytes(*(out / "lab").glob("feedback.db*"))},
        "clips": {"segments": counts["segments"], "bytes": _bytes(out / "lab" / "clips")},
        "render_size": args.render_size,
        "jsonl_export": {"s": jsonl_s, "bytes": _bytes(jsonl), "note": "no clips"},
        "export_video": {"s": video_s, "bytes": video.bytes, "rows": video.rows},
        "export_images": {"s": images_s, "bytes": images.bytes, "image_size": args.image_size},
        "import_video": {"s": import_s, "added": added},
        "code": run_metadata(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "code"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
