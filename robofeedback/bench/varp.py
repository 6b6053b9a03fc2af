"""VARP on this machine: how often each judge agrees with the true reward, with and without the trajectory
sketch, and SAC trained on a judge's labels with and without the agent regularization.

``python -m robofeedback.bench.varp [judges] [policy] [--out runs/bench/varp]`` (both by default) writes
``<part>.json``, ``REPORT.md`` and PNGs:

- **judges**: segments from scripted-expert, noisy-expert and random rollouts of each task; random pairs of
  them whose returns differ are labelled by the Oracle (segment return under the env's reward) and by each
  judge on the plain last frame and on the sketched one. Reported: agreement with the Oracle on the pairs
  the judge labelled, and the share it labelled. The chat judge runs when ``--vlm-url`` and
  ``--vlm-model`` name a server. ``judge_examples.png`` shows sketched pairs per task, to check by eye.
  For reference, the same agreement for labels from the env's reward at each segment's last step alone
  (what one final frame can show at best).
- **policy**: SAC with the CLIP judge's labels on sketches (the VARP loop), lambda = 0 and lambda > 0, same
  seeds, next to nothing else: the figure is the effect of the regularization at this budget.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.config import run_metadata

JUDGE_TASKS = {
    "metaworld:drawer-open": {"max_episode_steps": 150, "segment_length": 50},
    "metaworld:sweep-into": {"max_episode_steps": 150, "segment_length": 50},
    "metaworld:soccer": {"max_episode_steps": 150, "segment_length": 50},
    "panda:PandaPushDense-v3": {"segment_length": 25},  # the dense reward: the sparse one ties most pairs
}
BEHAVIOURS = [("expert", 0.0), ("expert", 0.5), ("expert", 1.5), ("random", None)]
RENDER_SIZE = 128

POLICY_RUNS = {
    "metaworld:drawer-open": {
        "steps": 20_000,
        "seeds": [0],
        "lambdas": [0.0, 0.1],
        "config": {
            "eval_every": 2500,
            "eval_episodes": 20,
            "video_episodes": 0,
            "env_kwargs": {"max_episode_steps": 150, "render_size": 96},
            "sac": {"ent_coef": "auto_0.1"},
            "feedback": {"every": 2000, "segment_length": 50, "labels_per_round": 100, "budget": 1000},
            "preference": {"hidden": 128, "layers": 2, "max_epochs": 50, "use_actions": False},
        },
    },
    "bullet:HopperBulletEnv-v0": {
        "steps": 20_000,
        "seeds": [0],
        "lambdas": [0.0, 0.1],
        "config": {
            "eval_every": 2500,
            "eval_episodes": 10,
            "video_episodes": 0,
            "env_kwargs": {"render_size": 96},
            "feedback": {"every": 2000, "segment_length": 50, "labels_per_round": 100, "budget": 1000},
            "preference": {"hidden": 128, "layers": 2, "max_epochs": 50, "use_actions": False},
        },
    },
}


def _segments(spec: str, settings: dict, episodes: int, seed: int) -> tuple[Any, list]:
    """Segments of ``settings['segment_length']`` steps cut at random from every behaviour's rollouts."""
    from robofeedback.data.rollout import collect
    from robofeedback.envs import make
    from robofeedback.envs.experts import expert

    kwargs = {k: v for k, v in settings.items() if k != "segment_length"}
    env = make(spec, seed=seed, render_size=RENDER_SIZE, **kwargs)
    rng = np.random.default_rng(seed)
    length = settings["segment_length"]
    segments = []
    for i, (kind, noise) in enumerate(BEHAVIOURS):
        policy = expert(env, noise=noise, seed=seed + i) if kind == "expert" else None
        for trajectory in collect(env, policy, n_episodes=episodes, render=True, seed=seed + 100 * i):
            if len(trajectory) < length:
                continue
            for start in rng.integers(0, len(trajectory) - length + 1, size=3):
                segments.append(trajectory.segment(int(start), int(start) + length))
    return env, segments


def judges(
    episodes: int = 3,
    n_pairs: int = 200,
    seed: int = 0,
    alpha: float = 1.0,
    vlm_url: str | None = None,
    vlm_model: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Agreement of each judge with the Oracle on the same pairs, sketched and plain, per task."""
    from robofeedback.envs.tasks import task_prompts
    from robofeedback.feedback.teachers import oracle
    from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge

    rows, examples = [], []
    for spec, settings in JUDGE_TASKS.items():
        env, segments = _segments(spec, settings, episodes, seed)
        rng = np.random.default_rng(seed)
        pairs = []
        while len(pairs) < n_pairs:
            i, j = rng.choice(len(segments), size=2, replace=False)
            a, b = segments[i], segments[j]
            if a.trajectory is not b.trajectory and a.env_return != b.env_return:  # the Oracle must have a view
                pairs.append((a, b))
        truth = oracle().label_many(pairs)
        prompts = task_prompts(spec)
        variants = []
        for sketched in (False, True):
            clip = ClipJudge(prompts["goal"], prompts["baseline"], alpha=alpha, sketch=sketched, camera=env.camera_at)
            variants.append((f"clip-mini (alpha {alpha:g})", sketched, clip))
            if vlm_url and vlm_model:
                chat = ChatVLMJudge(
                    prompts["task"], base_url=vlm_url, model=vlm_model, sketch=sketched, camera=env.camera_at
                )
                variants.append((f"chat {vlm_model}", sketched, chat))
        # A reference, not a judge: the env's reward at the last step only, the best a one-frame view can know
        last_step = [
            "equal" if a.env_rewards[-1] == b.env_rewards[-1] else "a" if a.env_rewards[-1] > b.env_rewards[-1] else "b"
            for a, b in pairs
        ]
        for name, sketched, judge in [("last-step env reward (reference)", None, None), *variants]:
            start = time.time()
            labels = last_step if judge is None else [value for value, _ in judge.label_many(pairs)]
            both = [(t, v) for t, v in zip(truth, labels, strict=True) if t in "ab" and v in ("a", "b")]
            row = {
                "task": spec,
                "judge": name,
                "sketch": sketched,
                "pairs": len(pairs),
                "labelled": len(both),
                "coverage": round(len(both) / len(pairs), 3),
                "agreement": round(float(np.mean([t == v for t, v in both])), 3) if both else None,
                "seconds": round(time.time() - start, 1),
            }
            rows.append(row)
            print(json.dumps(row))
        examples.append(np.concatenate([variants[1][2].image(pairs[k][0]) for k in range(4)], axis=1))
    if out is not None and examples:
        import imageio.v2 as imageio

        imageio.imwrite(out / "judge_examples.png", np.concatenate(examples, axis=0))
    setup = {"episodes_per_behaviour": episodes, "behaviours": BEHAVIOURS, "render_size": RENDER_SIZE, "seed": seed}
    return {"setup": setup, "tasks": JUDGE_TASKS, "rows": rows}


def policy(out: Path, runs: dict[str, dict] | None = None) -> dict[str, Any]:
    """SAC on the VARP loop (CLIP judge, sketched frames) with each lambda, per task and seed."""
    from robofeedback.envs.tasks import task_prompts
    from robofeedback.feedback.vlm import ClipJudge
    from robofeedback.rl.train import train

    rows = []
    for spec, settings in (runs or POLICY_RUNS).items():
        prompts = task_prompts(spec)
        for seed in settings["seeds"]:
            for lam in settings["lambdas"]:
                config = copy.deepcopy(settings["config"])
                config["preference"]["agent_reg"] = lam
                judge = ClipJudge(prompts["goal"], prompts["baseline"], alpha=1.0)
                run_dir = out / "runs" / f"{spec.replace(':', '-')}_lambda{lam:g}_{seed}"
                commit = run_metadata()["git_commit"]  # the code the run starts with
                result = train(
                    spec,
                    reward="varp",
                    feedback=judge,
                    total_steps=settings["steps"],
                    seed=seed,
                    out_dir=run_dir,
                    config=config,
                )
                curve = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
                row = {
                    "task": spec,
                    "lambda": lam,
                    "seed": seed,
                    "steps": result.steps,
                    "success_rate": result.final_eval.get("success_rate"),
                    "mean_env_return": result.final_eval["mean_env_return"],
                    "labels": result.feedback["labels"],
                    "reward_accuracy_heldout": result.feedback.get("heldout_accuracy"),
                    "wall_time_s": round(result.wall_time_s, 1),
                    "git_commit": commit,
                    "curve": curve,
                }
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "curve"}))
    return {"runs": runs or POLICY_RUNS, "rows": rows}


def _plot_policy(rows: list[dict[str, Any]], path: Path) -> None:
    from robofeedback.rl.plots import save_figure, task_panels

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        for row in (r for r in rows if r["task"] == task):  # the env return: it moves where success stays at 0
            ax.plot(
                [c["steps"] for c in row["curve"]],
                [c["mean_env_return"] for c in row["curve"]],
                marker="o",
                label=f"lambda {row['lambda']:g}, seed {row['seed']}",
            )
        ax.set(title=f"{task}: SAC on CLIP-judge labels", xlabel="env steps", ylabel="mean env return (eval)")
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def report(results: dict[str, Any], out: Path) -> Path:
    lines = ["# VARP on this machine", ""]
    if "judges" in results:
        setup = results["judges"]["setup"]
        lines += [
            "## Judge agreement with the Oracle (segment return), plain last frame vs sketched",
            "",
            f"Segments from {setup['episodes_per_behaviour']} episodes of each behaviour (scripted expert with "
            f"action noise 0, 0.5, 1.5, and random actions), 3 random windows per episode, frames "
            f"{setup['render_size']} px; random pairs across episodes; seed {setup['seed']}.",
            "",
            "| task | judge | image | pairs | labelled | agreement with Oracle |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["judges"]["rows"]:
            image = {None: "-", False: "plain", True: "sketched"}[r["sketch"]]
            lines.append(
                f"| {r['task']} | {r['judge']} | {image} | {r['pairs']} | {r['coverage']:.0%} | {r['agreement']} |"
            )
        lines += ["", "![sketched examples](judge_examples.png)", ""]
    if "policy" in results:
        lines += [
            "## SAC on CLIP-judge labels (sketched), with and without the agent regularization",
            "",
            "| task | lambda | seed | steps | labels | success rate | env return | reward acc. (new labels) "
            "| wall time s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["policy"]["rows"]:
            lines.append(
                f"| {r['task']} | {r['lambda']:g} | {r['seed']} | {r['steps']} | {r['labels']} | {r['success_rate']} "
                f"| {r['mean_env_return']:.1f} | {r['reward_accuracy_heldout']} | {r['wall_time_s']} |"
            )
        lines += ["", "![learning curves](varp_policy_curves.png)", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=["judges", "policy"], default=[])
    parser.add_argument("--out", default="runs/bench/varp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=3, help="judges: episodes per behaviour (default 3)")
    parser.add_argument("--pairs", type=int, default=200, help="judges: pairs per task (default 200)")
    parser.add_argument("--vlm-url", default=None, help="judges: an OpenAI-compatible vision chat server")
    parser.add_argument("--vlm-model", default=None, help="judges: the chat model's name on that server")
    parser.add_argument("--tasks", nargs="*", choices=sorted(POLICY_RUNS), help="policy runs on only these tasks")
    args = parser.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {task: POLICY_RUNS[task] for task in args.tasks} if args.tasks else None
    results: dict[str, Any] = {}
    for part in ("judges", "policy"):
        path = out / f"{part}.json"
        if part in (args.parts or ("judges", "policy")):
            start, metadata = time.time(), run_metadata()  # the code the part starts with
            if part == "judges":
                result = judges(
                    args.episodes, args.pairs, args.seed, vlm_url=args.vlm_url, vlm_model=args.vlm_model, out=out
                )
            else:
                result = policy(out, runs)
                if runs is not None and path.exists():  # keep the other tasks' earlier runs
                    earlier = json.loads(path.read_text())
                    result["rows"] = [r for r in earlier["rows"] if r["task"] not in runs] + result["rows"]
                _plot_policy(result["rows"], out / "varp_policy_curves.png")
            result.update(wall_time_s=round(time.time() - start, 1), metadata=metadata)
            path.write_text(json.dumps(result, indent=2, default=str))
        if path.exists():
            results[part] = json.loads(path.read_text())
    print(f"report: {report(results, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
