"""VLM-RM's flags of ``robofeedback train --reward clip`` (the prompts and model are the shared CLIP flags)."""

from __future__ import annotations

import argparse

from robofeedback.methods.arguments import positive_int
from robofeedback.methods.clip.model import ClipReward


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLIP reward's own flags (VLM-RM): how often frames are scored, and the reward's scale."""
    g = parser.add_argument_group("CLIP reward (--reward clip)")
    g.add_argument("--clip-every", type=positive_int, default=1, help="score every k-th step, holding the last")
    g.add_argument("--clip-at-episode-end", action="store_true", help="score only each episode's last step")
    g.add_argument("--clip-scale", type=float, default=1.0, help="multiply the CLIP reward by this (default 1)")
    g.add_argument("--clip-normalize", action="store_true", help="standardise the reward with running statistics")
    g.add_argument("--clip-precision", default="fp32", choices=["fp32", "bf16"], help="image encoder precision")


def clip_reward(args: argparse.Namespace) -> ClipReward:
    """The CLIP reward that the --goal, --baseline and --clip-* flags describe."""
    if not args.goal:
        raise ValueError('--reward clip needs --goal "<what the frame shows when the task is done>"')
    return ClipReward(
        goal=args.goal,
        baseline=args.baseline,
        alpha=args.alpha,
        model=args.clip_model,
        pretrained=args.pretrained,
        device=args.clip_device,
        precision=args.clip_precision,
        scale=args.clip_scale,
        normalize=args.clip_normalize,
        every=args.clip_every,
        at_episode_end=args.clip_at_episode_end,
    )


def from_args(args: argparse.Namespace) -> tuple[ClipReward, None, dict]:
    """The CLIP reward; it learns from no feedback."""
    return clip_reward(args), None, {}
