"""Argument helpers that the methods' flags and commands share: positive integers, who labels (the scripted
teachers or people), the CLIP prompts and model, and the LLM that writes reward code (a live server or recorded
answers) with the info keys its code may read."""

from __future__ import annotations

import argparse

from robofeedback.feedback.llm import OpenAICompatible, Replay
from robofeedback.feedback.sources import HumanQueue
from robofeedback.feedback.teachers import make_teacher
from robofeedback.protocols import FeedbackSource
from robofeedback.rewards.code import INFO_KEYS


def positive_int(text: str) -> int:
    """An argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLIP prompts and model, shared by the CLIP reward (VLM-RM) and the CLIP judge (VARP)."""
    g = parser.add_argument_group("CLIP prompts and model (--reward clip, and VARP's --judge clip)")
    g.add_argument("--goal", action="append", help="language goal; repeat to average several prompts")
    g.add_argument("--baseline", action="append", help="baseline prompt for the goal-baseline projection")
    g.add_argument("--alpha", type=float, default=0.0, help="projection strength in [0, 1] (default 0: cosine)")
    g.add_argument("--clip-model", default="mini", help="'mini' (shipped; default), an open_clip folder or name")
    g.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint file for a named --clip-model")
    g.add_argument("--clip-device", default=None, help="where CLIP runs: cpu, cuda, cuda:1 (default: a GPU if any)")


def add_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    """Who labels for a learned reward: a B-Pref scripted teacher, or people in the annotation app."""
    g = parser.add_argument_group("who labels (learned rewards)")
    g.add_argument(
        "--teacher",
        default="oracle",
        choices=["oracle", "stochastic", "mistake", "skip", "equal", "myopic", "human"],
        help="who labels: a B-Pref scripted teacher, or 'human' (people in the annotation app, through --store)",
    )
    g.add_argument(
        "--teacher-arg",
        type=float,
        default=None,
        help="the teacher's parameter: beta (stochastic, default 1), eps (mistake, default 0.1), "
        "threshold (skip, equal), gamma (myopic, default 0.9)",
    )
    g.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="with --teacher human: seconds to wait for a round's answers before training on (default 0)",
    )


TEACHER_ARG = {"stochastic": "beta", "mistake": "eps", "skip": "threshold", "equal": "threshold", "myopic": "gamma"}


def teacher_from_args(args: argparse.Namespace) -> FeedbackSource:
    """Who labels, as the shared ``--teacher`` flags say: a scripted teacher, or people through the store."""
    if args.teacher == "human":
        return HumanQueue(wait_seconds=args.wait)
    params = {}
    if args.teacher_arg is not None:
        if args.teacher not in TEACHER_ARG:
            raise ValueError(f"the {args.teacher} teacher takes no --teacher-arg")
        params[TEACHER_ARG[args.teacher]] = args.teacher_arg
    elif args.teacher in ("skip", "equal"):
        raise ValueError(f"the {args.teacher} teacher needs --teacher-arg THRESHOLD (in segment-return units)")
    return make_teacher(args.teacher, seed=args.seed, **params)


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
    return tuple(dict.fromkeys(INFO_KEYS + tuple(args.info_keys or ())))


def chat_client(args: argparse.Namespace) -> OpenAICompatible | Replay | None:
    """The LLM that --llm / --replay name, or None for the offline path."""
    if args.replay and args.llm:
        raise ValueError("give --llm (a live server) or --replay (recorded answers), not both")
    if args.replay:
        return Replay(args.replay)
    if args.llm:
        if not args.model:
            raise ValueError("--llm needs --model, the model's name on that server")
        return OpenAICompatible(args.llm, args.model, args.api_key_env, record=args.record)
    return None
