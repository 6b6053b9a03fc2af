"""``robofeedback app``: the annotation app over a feedback store."""

from __future__ import annotations

import argparse

from robofeedback.cli.common import add_app_arguments, app_server


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``app`` command's arguments."""
    p = subparsers.add_parser(
        "app",
        help="the annotation app: people label queries from the feedback store in a browser",
        description="Serve the annotation app over a feedback store: pairwise preferences, rankings, corrections "
        "and factor rankings, and the status of the runs training on them. Start it before or after the trainers.",
    )
    add_app_arguments(p, "runs/feedback.db")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    server = app_server(args)
    print(f"annotation app on {server.url} (store {args.store}); Ctrl-C to stop", flush=True)
    print(f"access: {server.access}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0
