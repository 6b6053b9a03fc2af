"""ICPL on this machine: the best candidate's success per iteration, for the offline factor-weight proposer
and for the whole LLM loop served hand-written answers (a replay, not a model), with the scripted ranker.

``python -m robofeedback.bench.icpl [--tasks ...] [--out runs/bench/icpl]`` writes ``results.json``,
``REPORT.md`` and ``icpl_iterations.png``. The replays (``assets/icpl/<task>.jsonl``) are answers written by
hand to read like a code LLM's and served whatever the prompt says, for a reproducible run of the loop's
machinery without a server; they measure no model. A live model runs the same loop with
``robofeedback icpl --llm ...``. Each ranking of K candidates counts as K - 1 pairwise
preferences, the unit the preference core's label budget is counted in.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.bench.common import FACTOR_NOTE
from robofeedback.config import run_metadata

TASKS = {
    "panda:PandaReach-v3": {
        "task": "move the gripper to the green target",
        "iterations": 3,
        "candidates": 4,
        "train_steps": 3000,
        "config": {"eval_every": 1000, "eval_episodes": 20, "video_episodes": 1, "env_kwargs": {"render_size": 96}},
    },
    "metaworld:drawer-close": {
        "task": "push the drawer closed",
        "iterations": 3,
        "candidates": 4,
        "train_steps": 6000,
        "config": {
            "eval_every": 2000,
            "eval_episodes": 20,
            "video_episodes": 1,
            "env_kwargs": {"max_episode_steps": 150, "render_size": 96},
        },
    },
}


def replay_path(task: str) -> Path:
    from robofeedback.config import assets_dir

    return assets_dir() / "icpl" / f"{task.replace(':', '-')}.jsonl"


def run(out: Path, tasks: dict[str, dict], seed: int = 0, n_jobs: int = 1) -> list[dict[str, Any]]:
    from robofeedback.feedback.llm import Replay
    from robofeedback.rewards.icpl import ICPL

    rows = []
    for spec, settings in tasks.items():
        for proposer_name in ("offline", "hand-written replay"):
            proposer = None if proposer_name == "offline" else Replay(replay_path(spec), model="replay")
            start, commit = time.time(), run_metadata()["git_commit"]
            loop = ICPL(
                spec,
                settings["task"],
                proposer=proposer,
                iterations=settings["iterations"],
                candidates=settings["candidates"],
                train_steps=settings["train_steps"],
                config=settings["config"],
                n_jobs=n_jobs,
                out_dir=out / "runs" / f"{spec.replace(':', '-')}_{proposer_name.replace(' ', '-')}_{seed}",
                seed=seed,
            )
            summary = loop.run()
            row = {
                "task": spec,
                "proposer": summary["proposer"],
                "seed": seed,
                "candidates": settings["candidates"],
                "train_steps": settings["train_steps"],
                "best_success_per_iteration": [it["best_success_rate"] for it in summary["iterations"]],
                "best_return_per_iteration": [it["best_env_return"] for it in summary["iterations"]],
                "pairwise_preferences": summary["iterations"][-1]["pairwise_preferences"],
                "best": summary["best"]["name"],
                "wall_time_s": round(time.time() - start, 1),
                "git_commit": commit,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from robofeedback.rl.plots import save_figure, task_panels

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        for row in (r for r in rows if r["task"] == task):
            values = row["best_success_per_iteration"]
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=row["proposer"])
            ax.set_xticks(np.arange(1, len(values) + 1))
        ax.set(title=f"ICPL on {task}", xlabel="iteration", ylabel="best candidate's success rate", ylim=(-0.05, 1.05))
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)


def report(rows: list[dict[str, Any]], out: Path) -> Path:
    lines = [
        "# ICPL on this machine",
        "",
        "Scripted ranker (success, then env return, of each candidate's final policy on 20 eval episodes). "
        + FACTOR_NOTE,
        "",
        "| task | proposer | K | steps per candidate | best success per iteration | pairwise preferences "
        "| wall time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_iteration = ", ".join(f"{v:.2f}" for v in r["best_success_per_iteration"])
        lines.append(
            f"| {r['task']} | {r['proposer']} | {r['candidates']} | {r['train_steps']} | {per_iteration} "
            f"| {r['pairwise_preferences']} | {r['wall_time_s']} |"
        )
    lines += ["", "![best candidate per iteration](icpl_iterations.png)", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/icpl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="candidates trained in parallel")
    parser.add_argument("--tasks", nargs="*", choices=sorted(TASKS), help="only these tasks")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = {t: TASKS[t] for t in args.tasks} if args.tasks else TASKS
    results = out / "results.json"
    earlier = json.loads(results.read_text())["rows"] if results.exists() else []
    rows = [r for r in earlier if r["task"] not in tasks] + run(out, tasks, args.seed, args.n_jobs)
    results.write_text(json.dumps({"rows": rows, "tasks": TASKS, "metadata": run_metadata()}, indent=2))
    plot(rows, out / "icpl_iterations.png")
    print(f"report: {report(rows, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
