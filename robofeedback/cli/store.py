"""``robofeedback store``: check, back up, export or import a feedback store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robofeedback.cli.common import add_store_argument
from robofeedback.data.store import FeedbackStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``store`` command's arguments."""
    p = subparsers.add_parser(
        "store",
        help="check, back up, export or import a feedback store",
        description="The lab's tools for its feedback store. check runs the full integrity and schema checks and "
        "prints the counts; backup copies a SQLite store with SQLite's online backup (safe while trainers and the "
        "app write); export writes every row as JSONL; import adds an export's rows, checked like the API's, all or "
        "none.",
    )
    add_store_argument(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("check", help="integrity and schema check, and counts")
    actions.add_parser("backup", help="online backup to a new file").add_argument("to", help="the backup's path")
    actions.add_parser("export", help="every row as JSONL").add_argument("to", help="the .jsonl file to write")
    actions.add_parser("import", help="add the rows of an export").add_argument("jsonl", help="an export's path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action != "import" and "://" not in args.store and not Path(args.store).is_file():
        raise FileNotFoundError(f"no feedback store at {args.store}")
    store = FeedbackStore(args.store)
    if store.migration is not None:
        print(store.migration)
    if args.action == "check":
        print(json.dumps({"store": repr(store), "integrity": "ok", **store.check()}, indent=2))
    elif args.action == "backup":
        print(f"backed {store!r} up to {store.backup(args.to)}")
    elif args.action == "export":
        print(f"wrote {store.export_jsonl(args.to)}: {json.dumps(store.counts())}")
    else:
        print(f"imported {args.jsonl} into {store!r}: {json.dumps(store.import_jsonl(args.jsonl))}")
    return 0
