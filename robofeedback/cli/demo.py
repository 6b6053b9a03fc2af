"""``robofeedback demo``: the annotation app with SAC learning panda reach from the preferences given in it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from robofeedback.apps.auto import AutoAnnotator
from robofeedback.cli.common import add_app_arguments, app_server, positive_int
from robofeedback.config import config_dir, deep_merge, load_yaml
from robofeedback.feedback.sources import HumanQueue
from robofeedback.methods.preference.bench import heldout_accuracy
from robofeedback.rl.train import TrainResult, train

if TYPE_CHECKING:
    from robofeedback.apps.annotate import AppServer


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``demo`` command's arguments."""
    p = subparsers.add_parser(
        "demo",
        help="the main job: the annotation app with SAC learning panda reach from the preferences given in it",
        description="Start the annotation app and a trainer (SAC on panda:PandaReachDense-v3, reward learned from "
        "the preferences given in the app) and print the URL. With --auto a scripted Oracle answers through the "
        "app's HTTP endpoints, the path a browser uses, so that the whole loop runs unattended.",
    )
    add_app_arguments(p, "runs/demo/feedback.db")
    p.add_argument("--auto", action="store_true", help="a scripted teacher answers the queries (no person needed)")
    p.add_argument(
        "--teacher",
        choices=["oracle", "mistake"],
        default="oracle",
        help="with --auto, who answers: the Oracle (always right) or Mistake (wrong on 10%% of answers, at random)",
    )
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the comparison run at the end (SAC on the env's own reward, same steps and seed)",
    )
    p.add_argument("--steps", type=positive_int, default=12_000, help="env steps to train (default 12000)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default="runs/demo", help="training output folder (default runs/demo)")
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        help="seconds each feedback round waits for its answers (default 60 with --auto, 300 for a person)",
    )
    p.add_argument("--keep-serving", action="store_true", help="keep the app up after training, until Ctrl-C")
    p.add_argument(
        "--config", default=None, help="training settings, YAML (default: configs/demo.yaml, which says what they mean)"
    )
    p.set_defaults(func=run)


ENV = "panda:PandaReachDense-v3"


def run(args: argparse.Namespace) -> int:
    if args.teacher != "oracle" and not args.auto:
        raise ValueError("--teacher chooses the scripted teacher of --auto; without --auto a person answers")
    start = time.time()
    server = app_server(args)
    print(f"annotation app: {server.url}  (store {args.store})\naccess: {server.access}", flush=True)
    auto = None
    if args.auto:
        auto = AutoAnnotator(server.url, args.store, args.teacher, seed=args.seed).start()
        print(f"a scripted teacher ({auto.teacher.source}) answers through the app's HTTP endpoints", flush=True)
    else:
        print("open the URL, enter your name and compare the clips; training waits for each round's answers")
    wait = args.wait if args.wait is not None else (60.0 if args.auto else 300.0)
    config = load_yaml(args.config or config_dir() / "demo.yaml")
    print(f"progress: one line per evaluation, also in {Path(args.out) / 'progress.log'}", flush=True)
    try:
        result = train(
            ENV,
            reward="preference",
            algo="sac",
            total_steps=args.steps,
            seed=args.seed,
            out_dir=args.out,
            config=config,
            feedback=HumanQueue(wait_seconds=wait),
            store=args.store,
            task="to move the gripper's tip onto the green target",
            progress=False,
            echo=True,
        )
    finally:
        if auto is not None:
            auto.stop()
    record, summary = _report(args, result, config, start)
    if not args.no_compare:
        true = _compare(args, config)
        summary += (
            f"; SAC on the env's own reward: success {true.get('success_rate', float('nan')):.2f} "
            f"({time.time() - start:.0f} s in all)"
        )
        record["true_reward_success_rate"] = true.get("success_rate")
    _finish(args, server, record, summary)
    return 0


def _report(args: argparse.Namespace, result: TrainResult, config: dict, start: float) -> tuple[dict, str]:
    """Print how well the learned reward agrees with the env's; the run's record (demo.json) and summary line."""
    final, fb = result.final_eval, result.feedback
    success = final.get("success_rate", float("nan"))
    fresh = heldout_accuracy(result.out_dir, ENV, config, result.model, args.seed)
    print(
        f"learned reward: agrees with the env's reward on {fresh:.2f} of 500 fresh segment pairs (final policy and "
        f"random actions); on the last round's {fb['selection']}-picked queries, before learning them: "
        f"{fb.get('heldout_accuracy', float('nan')):.2f}"
    )
    print(f"video: {result.video}\nlearning curve: {result.learning_curve}", flush=True)
    record = {
        "teacher": args.teacher if args.auto else "people",
        "seed": args.seed,
        "steps": result.steps,
        "eval_episodes": result.config.eval_episodes,
        "success_rate": success,
        "labels": fb["labels"],
        "wall_time_s": round(time.time() - start, 1),
        "reward_accuracy_fresh_pairs": fresh,
    }
    summary = (
        f"demo: success {success:.2f} on {result.config.eval_episodes} evaluation episodes after {result.steps} "
        f"steps, from {fb['labels']} labels given in the app, {record['wall_time_s']:.0f} s"
    )
    return record, summary


def _compare(args: argparse.Namespace, config: dict) -> dict:
    """The comparison run, SAC on the env's own reward with the same steps and seed; its final evaluation."""
    print("comparison: SAC on the env's own reward, same steps and seed ...", flush=True)
    true = train(
        ENV,
        reward="env",
        algo="sac",
        total_steps=args.steps,
        seed=args.seed,
        out_dir=Path(args.out) / "true-reward",
        config=deep_merge(config, {"video_episodes": 0}),
        resume=False,
        progress=False,
    )
    return true.final_eval


def _finish(args: argparse.Namespace, server: AppServer, record: dict, summary: str) -> None:
    """Print and write the summary (demo.json, progress.log), and stop the app, with --keep-serving on Ctrl-C."""
    print(summary, flush=True)
    (Path(args.out) / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    with open(Path(args.out) / "progress.log", "a") as f:
        f.write(summary + "\n")
    if args.keep_serving:
        print(f"the app stays up on {server.url}; Ctrl-C to stop", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    server.stop()
