"""``robofeedback icpl``: in-context preference learning of reward code."""

from __future__ import annotations

import argparse

from robofeedback.config import load_yaml
from robofeedback.envs.tasks import task_prompts
from robofeedback.methods.arguments import add_llm_arguments, chat_client, info_keys, positive_int
from robofeedback.methods.icpl.model import ICPL, ScriptedRanker, StoreRanker, TerminalRanker
from robofeedback.parallel import add_executor_arguments, make_executor


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``icpl`` command's arguments."""
    p = subparsers.add_parser(
        "icpl",
        help="ICPL: an LLM writes reward code, policies train on it, a judge ranks them, the LLM refines",
        description="In-context preference learning of reward code. Without --llm or --replay the offline "
        "factor-weight proposer (no LLM) writes the candidates. Everything goes to --out: per iteration and "
        "candidate the prompt, response, code, reward trace, video and score; summary.json.",
    )
    p.add_argument("--env", required=True, help="env spec, as for train")
    p.add_argument("--task", default=None, help="the task in words (default: the env's known task text)")
    p.add_argument("--iterations", type=positive_int, default=5, help="rounds of proposals (default 5)")
    p.add_argument("--candidates", type=positive_int, default=6, help="reward functions per round (default 6)")
    p.add_argument("--steps", type=positive_int, default=5000, help="env steps per candidate policy (default 5000)")
    add_llm_arguments(p, temperature=1.0)
    p.add_argument(
        "--judge",
        default="script",
        choices=["script", "human", "app"],
        help="who ranks: 'script' (success, then env return), 'human' (you, at this terminal) or 'app' "
        "(people in the annotation app, through --store)",
    )
    p.add_argument("--store", default="runs/feedback.db", help="feedback store for --judge app")
    p.add_argument("--n-jobs", type=positive_int, default=1, help="candidates trained in parallel (default 1)")
    add_executor_arguments(p, "candidates")
    p.add_argument("--config", default=None, help="YAML training config for the candidates, as for train")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/icpl-<env>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task = args.task or task_prompts(args.env).get("task")
    if not task:
        raise ValueError(f'icpl needs --task "<the task in words>": no task text is known for {args.env}')
    proposer = chat_client(args)
    ranker = {"script": ScriptedRanker, "human": TerminalRanker, "app": lambda: StoreRanker(args.store)}[args.judge]()
    out = args.out or f"runs/icpl-{args.env.replace(':', '-')}"
    executor = make_executor(args.executor, args.n_jobs, args.address)
    loop = ICPL(
        args.env,
        task,
        proposer=proposer,
        ranker=ranker,
        iterations=args.iterations,
        candidates=args.candidates,
        train_steps=args.steps,
        config=load_yaml(args.config) if args.config else None,
        executor=executor,
        out_dir=out,
        seed=args.seed,
        temperature=args.temperature,
        info_keys=info_keys(args),
    )
    with executor:
        summary = loop.run()
    for row in summary["iterations"]:
        print(
            f"iteration {row['iteration']}: best {row['best']} (success {row['best_success_rate']}, "
            f"env return {row['best_env_return']:.1f}), worst {row['worst']}"
        )
    best = summary["best"]
    print(f"best reward: {best['name']}, success {best['success_rate']}; code in {out}; summary {out}/summary.json")
    return 0
