"""``robofeedback dataset``: a feedback store's segments and labels as a Hugging Face dataset, and back."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from robofeedback.cli.common import add_store_argument, positive_int
from robofeedback.data.dataset import FRAMES, export_dataset, import_dataset
from robofeedback.data.store import FeedbackStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``dataset`` command's arguments."""
    p = subparsers.add_parser(
        "dataset",
        help="export a feedback store as a Hugging Face dataset, or import one",
        description="export writes the store's labels of every kind with the segments, queries and runs they name as "
        "a folder that datasets.load_dataset opens (Parquet shards, the clips, a dataset card); import adds such a "
        "folder to a store, checked like the API's writes, all or nothing, with its ids, runs and people namespaced.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write a dataset folder")
    add_store_argument(export)
    export.add_argument("--out", required=True, help="the folder to write (new or empty)")
    export.add_argument("--run", action="append", help="only this run's labels (repeat for several; default all)")
    export.add_argument(
        "--source", action="append", help="only labels whose source matches, e.g. 'human:*' (repeat; default all)"
    )
    export.add_argument(
        "--frames",
        choices=FRAMES,
        default="video",
        help="clips as video files (default), as image columns, or none",
    )
    export.add_argument("--image-size", type=positive_int, default=96, help="pixels of --frames images (default 96)")
    export.add_argument("--pseudonymise", action="store_true", help="name people annotator-1, annotator-2, ...")
    export.add_argument("--license", default="unknown", help="the card's licence, e.g. cc-by-4.0 (default unknown)")
    export.add_argument("--name", help="the dataset's name, its namespace when imported (default: the folder's)")
    imported = actions.add_parser("import", help="add a dataset folder to a store")
    imported.add_argument("folder", help="a folder robofeedback dataset export wrote")
    add_store_argument(imported)
    imported.add_argument("--namespace", help="prefix of its ids, runs and people (default: the dataset's name)")
    imported.add_argument("--videos", help="where its clips go (default: videos/ next to the store's file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "export" and "://" not in args.store and not Path(args.store).is_file():
        raise FileNotFoundError(f"no feedback store at {args.store}")
    store = FeedbackStore(args.store)
    start = time.perf_counter()
    if args.action == "export":
        report = export_dataset(
            store,
            args.out,
            runs=args.run,
            sources=args.source,
            frames=args.frames,
            image_size=args.image_size,
            pseudonymise=args.pseudonymise,
            license=args.license,
            name=args.name,
        )
        print(f"wrote {report} in {time.perf_counter() - start:.1f} s")
        if report.missing_clips:
            print(f"segments whose clip files were gone: {report.missing_clips[:10]}")
    else:
        added = import_dataset(store, args.folder, namespace=args.namespace, videos=args.videos)
        print(f"imported {args.folder} into {store!r} in {time.perf_counter() - start:.1f} s: {json.dumps(added)}")
    return 0
