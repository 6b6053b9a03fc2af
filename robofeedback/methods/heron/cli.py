"""HERON's flags of ``robofeedback train --reward heron``: the ranking of the env's reward factors and how pairs
are compared by it."""

from __future__ import annotations

import argparse

from robofeedback.envs import make
from robofeedback.methods.heron.model import HierarchicalJudge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """HERON: the ranking of the env's reward factors and how pairs are compared by it."""
    g = parser.add_argument_group("HERON (--reward heron; the preference-learning options above apply too)")
    g.add_argument("--factors", default=None, help="the env's reward factors, most important first (comma-separated)")
    g.add_argument("--sigma", default=None, help="margin scale per level, comma-separated, or one number (default 1)")
    g.add_argument(
        "--signs", default=None, help="+1 (reward) or -1 (cost) per factor, comma-separated (default: the env's)"
    )
    g.add_argument(
        "--ranking-from",
        default=None,
        metavar="STORE",
        help="take the order, signs and margins from the latest factor ranking of --env in this feedback store "
        "(what the annotation app writes) instead of --factors",
    )
    g.add_argument(
        "--wait-ranking",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --ranking-from: if the store has no ranking of --env, ask for one in the app's factor-ranking "
        "tab and wait this long (default 0: fail at once)",
    )
    g.add_argument(
        "--granularity",
        default="transition",
        choices=["transition", "segment"],
        help="compare single transitions (default, as the authors' code does) or segments by per-factor sums",
    )
    g.add_argument("--ties", default="drop", choices=["drop", "equal"], help="a tie at every level: no label or equal")
    g.add_argument("--level-scale", type=float, default=None, help="alpha >= 1: pairs decided lower count as closer")


def _numbers(text: str | None, name: str, cast=float) -> list | None:
    if text is None:
        return None
    try:
        return [cast(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name} takes comma-separated numbers, got {text!r}") from None


def heron_feedback(args: argparse.Namespace) -> HierarchicalJudge:
    """The HERON judge: --factors, or the ranking people gave in the app (--ranking-from)."""
    options = {"granularity": args.granularity, "ties": args.ties}
    sigma, signs = _numbers(args.sigma, "sigma"), _numbers(args.signs, "signs", int)
    if sigma is not None:
        options["sigma"] = sigma[0] if len(sigma) == 1 else sigma
    if args.ranking_from:
        if args.factors:
            raise ValueError("give --factors or --ranking-from, not both")
        factors = None
        if args.wait_ranking > 0:  # the app shows people the env's named factors to rank
            env = make(args.env)
            factors = list(env.factor_info)
            env.close()
        return HierarchicalJudge.from_store(
            args.ranking_from, args.env, signs=signs, factors=factors, wait_seconds=args.wait_ranking, **options
        )
    if not args.factors:
        raise ValueError("--reward heron needs --factors (most important first) or --ranking-from STORE")
    return HierarchicalJudge([f.strip() for f in args.factors.split(",")], signs=signs, **options)


def from_args(args: argparse.Namespace) -> tuple[str, HierarchicalJudge, dict]:
    """HERON's reward, its judge, and the reward model's settings the flags give."""
    model = {} if args.level_scale is None else {"level_scale": args.level_scale}
    return "heron", heron_feedback(args), {"preference": model}
