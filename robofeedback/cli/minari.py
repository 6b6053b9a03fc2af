"""``robofeedback minari``: look into a Minari dataset, and queue its episodes' segments for labelling in the app."""

from __future__ import annotations

import argparse
import json

from robofeedback.cli.common import add_store_argument, positive_int
from robofeedback.data.minari_io import METADATA_KEY, env_spec_of, is_gym_id, load, queue_minari
from robofeedback.data.store import FeedbackStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``minari`` command's arguments."""
    p = subparsers.add_parser(
        "minari",
        help="look into a Minari dataset, or queue its segments for labelling",
        description="Minari datasets (a dataset id under $MINARI_DATASETS_PATH, or a dataset's folder), whoever made "
        "them. info prints the episodes, the env they came from and how to recreate it; queue cuts the episodes "
        "into segments and puts preference queries on pairs of them into the feedback store, for people to label "
        "in the app (robofeedback app). The app shows videos: with --videos each segment is rendered from the "
        "simulator states that robofeedback's datasets hold (robofeedback rollout --minari); datasets without "
        "them can be queued without --videos, for teachers and judges that read numbers.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="episodes, steps and env of a dataset")
    info.add_argument("dataset", help="a Minari dataset id or folder")
    queue = actions.add_parser("queue", help="put preference queries on a dataset's segments into the store")
    queue.add_argument("dataset", help="a Minari dataset id or folder")
    add_store_argument(queue)
    queue.add_argument("--run", default="minari", help="the run the segments and queries go under (default minari)")
    queue.add_argument("--pairs", type=positive_int, default=20, help="preference queries to add (default 20)")
    queue.add_argument("--segment-length", type=positive_int, default=50, help="steps per segment (default 50)")
    queue.add_argument("--seed", type=int, default=0, help="seed of the segments' draw (default 0)")
    queue.add_argument("--videos", default=None, help="folder for the segments' videos, which the app shows")
    queue.add_argument("--render-size", type=positive_int, default=224, help="video size in pixels (default 224)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = load(args.dataset)
    if args.action == "info":
        recorded = dataset.storage.metadata.get(METADATA_KEY)
        spec = env_spec_of(dataset)
        if recorded and not is_gym_id(spec):
            recovery = "robofeedback.data.minari_io.recover_env(dataset) (Minari's recover_environment() cannot)"
        elif spec is not None:
            recovery = "Minari's recover_environment(), or robofeedback.data.minari_io.recover_env(dataset)"
        else:
            recovery = "neither Minari nor robofeedback: the dataset records no env"
        summary = {
            "dataset": dataset.id,
            "episodes": dataset.total_episodes,
            "steps": dataset.total_steps,
            "env_spec": spec,
            "recorded_by": f"robofeedback {recorded['version']}" if recorded else None,
            "recover_env": recovery,
        }
        print(json.dumps(summary, indent=2))
        return 0
    store = FeedbackStore(args.store)
    queries = queue_minari(
        store,
        dataset,
        run=args.run,
        segment_length=args.segment_length,
        pairs=args.pairs,
        seed=args.seed,
        video_dir=args.videos,
        render_size=args.render_size,
    )
    print(f"queued {len(queries)} preference queries on {dataset.id} under run {args.run!r} in {store!r}")
    return 0
