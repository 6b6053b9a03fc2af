"""Argument helpers and builders that several commands share."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robofeedback.apps.annotate import AppServer
    from robofeedback.feedback.llm import OpenAICompatible, Replay


def positive_int(text: str) -> int:
    """An argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


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
    from robofeedback.apps.service import AppConfig

    config = AppConfig(run=args.run, lease_seconds=args.lease, redundancy=args.redundancy)
    return AppServer(args.store, host=args.host, port=args.port, config=config).start()


def add_store_argument(p: argparse.ArgumentParser) -> None:
    """``--store`` of the store tools: the feedback store they work on."""
    p.add_argument("--store", default="runs/feedback.db", help="a SQLite path or a database URL (default %(default)s)")


def add_llm_arguments(p: argparse.ArgumentParser, temperature: float) -> None:
    """The LLM that writes reward code: a live server or recorded answers, and what its code may read."""
    p.add_argument("--llm", default=None, help="base URL of an OpenAI-compatible server (…/v1)")
    p.add_argument("--model", default=None, help="the model's name on that server")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env variable with the API key")
    p.add_argument("--replay", default=None, help="serve recorded LLM answers from this JSONL file instead")
    p.add_argument("--record", default=None, help="with --llm: also write the answers to this JSONL file")
    p.add_argument(
        "--temperature", type=float, default=temperature, help=f"sampling temperature (default {temperature:g})"
    )
    p.add_argument(
        "--info-key",
        dest="info_keys",
        action="append",
        default=None,
        metavar="KEY",
        help="a key of the env's info the reward code may read, besides factors and agent_pos (repeatable; never "
        "env_reward, success and the like)",
    )


def info_keys(args: argparse.Namespace) -> tuple[str, ...]:
    """The info keys the reward code reads: the defaults and those --info-key adds."""
    from robofeedback.rewards.code import INFO_KEYS

    return tuple(dict.fromkeys(INFO_KEYS + tuple(args.info_keys or ())))


def chat_client(args: argparse.Namespace) -> OpenAICompatible | Replay | None:
    """The LLM that --llm / --replay name, or None for the offline path."""
    if args.replay and args.llm:
        raise ValueError("give --llm (a live server) or --replay (recorded answers), not both")
    if args.replay:
        from robofeedback.feedback.llm import Replay

        return Replay(args.replay)
    if args.llm:
        from robofeedback.feedback.llm import OpenAICompatible

        if not args.model:
            raise ValueError("--llm needs --model, the model's name on that server")
        return OpenAICompatible(args.llm, args.model, args.api_key_env, record=args.record)
    return None
