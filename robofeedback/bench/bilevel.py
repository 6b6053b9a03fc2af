"""Bi-level reward learning from an expert video on this machine, next to ICPL with no video.

``python -m robofeedback.bench.bilevel [--out runs/bench/bilevel] [--iterations 4] [--steps 6000]`` runs, on
MetaWorld drawer-close with the shipped expert video (``assets/videos``, made by
``scripts/make_expert_video.py``):

- the offline path: the CLIP + time-warping judge and the factor-weight lower level (no model anywhere);
- the LLM path: the same judge, and the lower level's answers served from ``assets/bilevel`` (a hand-written
  replay, not a model: written by ``scripts/write_bilevel_replays.py`` to read like a code model's and served
  whatever the feedback says; a live model runs the same loop with ``robofeedback video-reward --llm ...``);
- ICPL with the offline factor-weight proposer and the scripted ranker, the same number of iterations with two
  candidates each (so twice the env steps), which sees the task's success instead of a video. Its best
  candidate per iteration is rendered on the same episode and scored by the same judge, for comparison.

It writes ``results.json``, ``REPORT.md`` and ``bilevel_iterations.png`` (expert similarity and the task's own
success per iteration).
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

TASK = "metaworld:drawer-close"
SETTINGS = {
    "task": "to push the drawer closed",
    "fps": 20.0,
    "config": {
        "eval_every": 2000,
        "eval_episodes": 20,
        "video_episodes": 1,
        "env_kwargs": {"max_episode_steps": 150, "render_size": 96},
    },
}


def assets(kind: str) -> Path:
    from robofeedback.config import assets_dir

    return assets_dir() / kind / ("metaworld-drawer-close" + ("-expert.mp4" if kind == "videos" else ".jsonl"))


def bilevel_row(name: str, llm, out: Path, iterations: int, steps: int, seed: int) -> dict[str, Any]:
    from robofeedback.rewards.bilevel import BilevelVideoReward

    start, commit = time.time(), run_metadata()["git_commit"]
    loop = BilevelVideoReward(
        TASK,
        assets("videos"),
        SETTINGS["task"],
        llm=llm,
        train_steps=steps,
        config=SETTINGS["config"],
        out_dir=out / "runs" / f"{name}_{seed}",
        seed=seed,
        fps=SETTINGS["fps"],
    )
    summary = loop.run(iterations)
    return {
        "method": name,
        "judge": summary["judge"],
        "lower_level": summary["updater"],
        "seed": seed,
        "steps_per_policy": steps,
        "policies": iterations,
        "similarity": [it["similarity"] for it in summary["iterations"]],
        "success_rate": [it["success_rate"] for it in summary["iterations"]],
        "env_return": [it["mean_env_return"] for it in summary["iterations"]],
        "wall_time_s": round(time.time() - start, 1),
        "git_commit": commit,
    }


def icpl_row(out: Path, iterations: int, steps: int, seed: int) -> dict[str, Any]:
    """ICPL without video, and its best candidate per iteration scored by the video judge on the episode the
    bi-level loop renders (seed + 30000)."""
    from stable_baselines3 import SAC

    from robofeedback.data.rollout import collect
    from robofeedback.data.video import resample
    from robofeedback.envs import make
    from robofeedback.feedback.vlm import ClipVideoJudge
    from robofeedback.rewards.bilevel import load_expert_video
    from robofeedback.rewards.icpl import ICPL

    start, commit = time.time(), run_metadata()["git_commit"]
    folder = out / "runs" / f"icpl_{seed}"
    summary = ICPL(
        TASK,
        SETTINGS["task"],
        iterations=iterations,
        candidates=2,
        train_steps=steps,
        config=SETTINGS["config"],
        out_dir=folder,
        seed=seed,
    ).run()
    judge, fps = ClipVideoJudge(), SETTINGS["fps"]
    expert = load_expert_video(assets("videos"), fps)
    env = make(TASK, seed=seed, **SETTINGS["config"]["env_kwargs"])
    similarity = []
    for it in summary["iterations"]:
        iteration, cand = it["best"].removeprefix("iter").split("-cand")
        model = SAC.load(folder / f"iter{iteration}" / f"cand{cand}" / "checkpoints" / "model.zip", device="cpu")
        (episode,) = collect(env, model, n_episodes=1, render=True, seed=seed + 30_000)
        learner = resample(episode.frames, env.metadata["render_fps"], fps)
        similarity.append(judge.compare_videos(learner, expert, fps).similarity)
    return {
        "method": "ICPL, no video",
        "judge": "script:icpl-ranker (success, then env return)",
        "lower_level": summary["proposer"],
        "seed": seed,
        "steps_per_policy": steps,
        "policies": 2 * iterations,
        "similarity": similarity,
        "success_rate": [it["best_success_rate"] for it in summary["iterations"]],
        "env_return": [it["best_env_return"] for it in summary["iterations"]],
        "wall_time_s": round(time.time() - start, 1),
        "git_commit": commit,
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from robofeedback.rl.plots import save_figure, task_panels

    fig, (left, right) = task_panels(["similarity", "success"])
    for row in rows:
        x = np.arange(1, len(row["similarity"]) + 1)
        left.plot(x, row["similarity"], marker="o", label=row["method"])
        right.plot(x, row["success_rate"], marker="o", label=row["method"])
    for ax, label in ((left, "similarity to the expert video (offline judge)"), (right, "success rate (20 episodes)")):
        ax.set(xlabel="iteration", ylabel=label, title=f"{TASK}: {label.split(' (')[0]}")
        ax.set_xticks(np.arange(1, max(len(r["similarity"]) for r in rows) + 1))
        ax.grid(alpha=0.3)
        ax.legend()
    right.set_ylim(-0.05, 1.05)
    save_figure(fig, path, dpi=110)


def report(rows: list[dict[str, Any]], out: Path) -> Path:
    def values(xs: list, digits: int = 2) -> str:
        return ", ".join("-" if x is None else f"{x:.{digits}f}" for x in xs)

    lines = [
        "# Bi-level reward learning from an expert video",
        "",
        f"{TASK}, expert video `{assets('videos').name}` (a scripted expert, another camera, other colours), "
        f"compared at {SETTINGS['fps']:g} fps. Success and return are the task's own, on 20 evaluation episodes "
        "after each policy's training; the similarity is the offline judge's on one rendered episode (seed + "
        "30000, the same every iteration). " + FACTOR_NOTE,
        "",
        "| method | judge | lower level | policies x steps | similarity per iteration | success per iteration "
        "| wall time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['judge']} | {r['lower_level']} | {r['policies']} x {r['steps_per_policy']} "
            f"| {values(r['similarity'], 3)} | {values(r['success_rate'])} | {r['wall_time_s']} |"
        )
    lines += ["", "![similarity and success per iteration](bilevel_iterations.png)", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/bilevel")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6000, help="env steps per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=["offline", "llm", "icpl"], help="only these runs")
    args = parser.parse_args(argv)
    import torch

    from robofeedback.feedback.llm import Replay

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    runs = {
        "offline": lambda: bilevel_row("bi-level, offline", None, out, args.iterations, args.steps, args.seed),
        "llm": lambda: bilevel_row(
            "bi-level, hand-written replay (not a model)",
            Replay(assets("bilevel")),
            out,
            args.iterations,
            args.steps,
            args.seed,
        ),
        "icpl": lambda: icpl_row(out, args.iterations, args.steps, args.seed),
    }
    for name in args.only or list(runs):
        row = runs[name]()
        rows = [r for r in rows if r["method"] != row["method"]] + [row]
        print(json.dumps(row), flush=True)
        results.write_text(json.dumps({"rows": rows, "settings": SETTINGS, "metadata": run_metadata()}, indent=2))
    plot(rows, out / "bilevel_iterations.png")
    print(f"report: {report(rows, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
