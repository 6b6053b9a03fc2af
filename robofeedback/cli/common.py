"""Argument helpers and builders that several of the general commands share."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robofeedback.apps.service import AppConfig
from robofeedback.methods.arguments import positive_int

if TYPE_CHECKING:
    from robofeedback.apps.annotate import AppServer


def add_app_arguments(p: argparse.ArgumentParser, store: str) -> None:
    """The annotation app's options: its feedback store (default ``store``), address and serving settings."""
    p.add_argument("--store", default=store, help=f"feedback store: a SQLite path or a database URL (default {store})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 for any free one)")
    p.add_argument("--run", default=None, help="serve only this run's queries (default: every run's)")
    p.add_argument("--lease", type=float, default=120.0, help="seconds a served query is held for its annotator")
    p.add_argument("--redundancy", type=positive_int, default=1, help="annotators who label each query (default 1)")


def app_server(args: argparse.Namespace) -> AppServer:
    """The annotation app that the ``add_app_arguments`` options describe, started."""
    from robofeedback.apps.annotate import AppServer

    config = AppConfig(run=args.run, lease_seconds=args.lease, redundancy=args.redundancy)
    return AppServer(args.store, host=args.host, port=args.port, config=config).start()


def add_store_argument(p: argparse.ArgumentParser) -> None:
    """``--store`` of the store tools: the feedback store they work on."""
    p.add_argument("--store", default="runs/feedback.db", help="a SQLite path or a database URL (default %(default)s)")
