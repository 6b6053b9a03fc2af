"""VARP's flags of ``robofeedback train --reward varp``: the judge of trajectory sketches and the agent
regularization."""

from __future__ import annotations

import argparse

from robofeedback.envs.tasks import task_prompts
from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge
from robofeedback.methods.arguments import teacher_from_args
from robofeedback.protocols import FeedbackSource


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """VARP: the judge of trajectory sketches and the agent regularization."""
    g = parser.add_argument_group("VARP (--reward varp; the preference-learning options above apply too)")
    g.add_argument(
        "--judge",
        default="clip",
        choices=["clip", "chat", "teacher"],
        help="who labels: 'clip' (offline CLIP judge with --goal, --baseline, --alpha, --clip-model), 'chat' (a vision "
        "chat model at --vlm-url) or 'teacher' (the scripted --teacher, for comparison)",
    )
    g.add_argument(
        "--sketch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw the agent's path on the frames the judge sees (default on)",
    )
    g.add_argument("--agent-reg", type=float, default=None, help="lambda of the agent regularization (default 0.1)")
    g.add_argument("--judge-margin", type=float, default=0.0, help="CLIP judge: similarity gap below which it abstains")
    g.add_argument("--vlm-url", default=None, help="chat judge: base URL of an OpenAI-compatible server (…/v1)")
    g.add_argument("--vlm-model", default=None, help="chat judge: model name on that server")
    g.add_argument("--vlm-key-env", default="OPENAI_API_KEY", help="chat judge: env variable with the API key")
    g.add_argument("--prompts", default=None, help="chat judge: folder with your own prompt files")


def varp_feedback(args: argparse.Namespace) -> FeedbackSource:
    """VARP's judge: CLIP, a vision chat model, or the scripted --teacher."""
    if args.judge == "teacher":
        return teacher_from_args(args)
    known = task_prompts(args.env)
    if args.judge == "chat":
        task = args.task or known.get("task")
        if not task:
            raise ValueError(f"--judge chat needs --task: no task text is known for {args.env}")
        return ChatVLMJudge(
            task,
            base_url=args.vlm_url,
            model=args.vlm_model,
            api_key_env=args.vlm_key_env,
            prompts=args.prompts,
            sketch=args.sketch,
        )
    goal = args.goal or known.get("goal")
    if not goal:
        raise ValueError(f'--judge clip needs --goal "<what the frame shows when the task is done>" for {args.env}')
    baseline = args.baseline or (known.get("baseline") if not args.goal else None)
    return ClipJudge(
        goal,
        baseline=baseline,
        alpha=args.alpha if baseline else 0.0,
        model=args.clip_model,
        pretrained=args.pretrained,
        device=args.clip_device,
        margin=args.judge_margin,
        sketch=args.sketch,
    )


def from_args(args: argparse.Namespace) -> tuple[str, FeedbackSource, dict]:
    """VARP's reward, its judge, and the agent regularization the flags give."""
    model = {} if args.agent_reg is None else {"agent_reg": args.agent_reg}
    return "varp", varp_feedback(args), {"preference": model}
