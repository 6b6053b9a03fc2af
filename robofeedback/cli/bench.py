"""``robofeedback bench``: the benchmark suite, with a report."""

from __future__ import annotations

import argparse

from robofeedback.bench import suite


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``bench`` command's arguments (the suite's own)."""
    p = subparsers.add_parser(
        "bench",
        help="the benchmark suite: every reward module and the baselines on the same tasks, with a report",
        description=suite.__doc__.split("\n\n")[0] + " " + suite.__doc__.split("\n\n")[1],
    )
    suite.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return suite.run_command(args)
