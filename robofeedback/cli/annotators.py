"""``robofeedback annotators``: register and revoke the app's annotators."""

from __future__ import annotations

import argparse
import time

from robofeedback.cli.common import add_store_argument
from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``annotators`` command's arguments."""
    p = subparsers.add_parser(
        "annotators",
        help="register the people and programs that may label through the app, and revoke them",
        description="Each annotator gets a secret, shown once and kept in the store only as a hash. People log in to "
        "the app with their name and secret; programs (script:*, vlm:*, llm:*) send theirs as a Bearer token. Once "
        "a person is registered, the app asks everyone to log in.",
    )
    add_store_argument(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register NAME and print its secret")
    add.add_argument("name", help="a person's name (alice), or with --program a source such as script:oracle")
    add.add_argument("--program", action="store_true", help="NAME is a program's source (script:, vlm:, llm:)")
    add.add_argument("--replace", action="store_true", help="issue a new secret to NAME (the old one stops working)")
    actions.add_parser("list", help="every annotator, live or revoked")
    actions.add_parser("revoke", help="revoke NAME's secret").add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = AnnotatorRegistry(FeedbackStore(args.store))
    if args.action == "add":
        source, secret = registry.add(args.name, program=args.program, replace=args.replace)
        login = "send it as 'Authorization: Bearer <secret>'" if args.program else f"log in as {args.name!r}"
        print(f"{source}: secret {secret}\n(shown once; the store keeps only its hash; {login})")
    elif args.action == "list":
        for annotator in registry.list():
            state = "revoked" if annotator.revoked_at is not None else "live"
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(annotator.created_at))
            print(f"{annotator.source}\t{state}\tsince {since}")
    else:
        print(f"revoked {registry.revoke(args.name)}")
    return 0
