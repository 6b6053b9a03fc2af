"""``robofeedback video-reward``: bi-level reward learning from an expert video."""

from __future__ import annotations

import argparse

from robofeedback.config import load_yaml
from robofeedback.envs.tasks import task_prompts
from robofeedback.feedback.vlm import ChatVLMJudge, ClipVideoJudge
from robofeedback.methods.arguments import add_llm_arguments, chat_client, info_keys, positive_int
from robofeedback.methods.bilevel.model import BilevelVideoReward


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``video-reward`` command's arguments."""
    p = subparsers.add_parser(
        "video-reward",
        help="bi-level reward learning from an expert video: a judge compares videos, an LLM updates the reward",
        description="Learn reward code from a video of an expert: each iteration trains a policy on the current "
        "code, a judge compares a video of it with the expert's (--judge clip: the offline CLIP + time-warping "
        "judge; --judge chat: a vision chat model), and the lower level (--llm or --replay; without them the "
        "offline factor-weight updater, which needs --judge clip) writes the next code. Everything goes to "
        "--out, one folder per iteration (code, side-by-side video, feedback, similarity); rerunning the "
        "same command continues an interrupted run.",
    )
    p.add_argument("--env", required=True, help="env spec, as for train")
    p.add_argument("--expert", required=True, help="the expert's video (mp4, webm, ...) or a folder of frames")
    p.add_argument("--task", default=None, help="the task in words (default: the env's known task text)")
    p.add_argument("--iterations", type=positive_int, default=5, help="iterations (default 5)")
    p.add_argument("--steps", type=positive_int, default=5000, help="env steps per policy (default 5000)")
    p.add_argument("--fps", type=float, default=20.0, help="frames per second the videos are compared at")
    p.add_argument("--start", type=float, default=None, help="trim the expert video: start, in seconds")
    p.add_argument("--end", type=float, default=None, help="trim the expert video: end, in seconds")
    p.add_argument("--frames-fps", type=float, default=None, help="frame rate of a folder of expert frames")
    p.add_argument("--judge", default="clip", choices=["clip", "chat"], help="upper level (default clip, offline)")
    p.add_argument("--clip-model", default="mini", help="--judge clip: 'mini' (shipped) or an open_clip model")
    p.add_argument("--clip-device", default=None, help="--judge clip: cpu, cuda, cuda:1 (default: a GPU if any)")
    p.add_argument("--vlm-url", default=None, help="--judge chat: base URL of an OpenAI-compatible vision server")
    p.add_argument("--vlm-model", default=None, help="--judge chat: the vision model's name on that server")
    p.add_argument("--vlm-key-env", default="OPENAI_API_KEY", help="--judge chat: env variable with its API key")
    p.add_argument("--prompts", default=None, help="--judge chat: folder with your own video_compare.txt")
    p.add_argument("--video-frames", type=positive_int, default=8, help="--judge chat: frames sent per video")
    p.add_argument("--video-layout", default="grid", choices=["grid", "sequence"], help="--judge chat: frames as")
    add_llm_arguments(p, temperature=0.7)
    p.add_argument("--config", default=None, help="YAML training config for the policies, as for train")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/video-reward-<env>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task = args.task or task_prompts(args.env).get("task")
    if not task:
        raise ValueError(f'video-reward needs --task "<the task in words>": no task text is known for {args.env}')
    if args.judge == "chat":
        if not (args.vlm_url and args.vlm_model):
            raise ValueError("--judge chat needs --vlm-url and --vlm-model (an OpenAI-compatible vision server)")
        judge = ChatVLMJudge(
            task,
            base_url=args.vlm_url,
            model=args.vlm_model,
            api_key_env=args.vlm_key_env,
            prompts=args.prompts,
            video_frames=args.video_frames,
            video_layout=args.video_layout,
        )
    else:
        judge = ClipVideoJudge(model=args.clip_model, device=args.clip_device)
    out = args.out or f"runs/video-reward-{args.env.replace(':', '-')}"
    loop = BilevelVideoReward(
        args.env,
        args.expert,
        task,
        judge=judge,
        llm=chat_client(args),
        train_steps=args.steps,
        config=load_yaml(args.config) if args.config else None,
        out_dir=out,
        seed=args.seed,
        fps=args.fps,
        start=args.start,
        end=args.end,
        frames_fps=args.frames_fps,
        temperature=args.temperature,
        info_keys=info_keys(args),
    )
    summary = loop.run(args.iterations)
    for row in summary["iterations"]:
        print(
            f"iteration {row['iteration']}: similarity to the expert {row['similarity']:.3f}, "
            f"success {row['success_rate']}, env return {row['mean_env_return']:.1f}"
        )
    best = summary["best"]
    print(
        f"most expert-like: iteration {best['iteration']} (similarity {best['similarity']:.3f}); videos, "
        f"feedback and code in {out}/iter<i>; summary {out}/summary.json"
    )
    return 0
