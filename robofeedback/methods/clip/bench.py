"""VLM-RM on this machine: encoder speed, reward quality against the true reward, and policies trained on it.

``python -m robofeedback.methods.clip.bench [speed] [quality] [policy] [--out runs/bench/clip]`` (all three by
default) writes ``<part>.json``, a ``REPORT.md`` section per part, and PNGs:

- **speed**: raw ``encode_image`` images/s at batch size n_envs (fp32 and bf16), and CLIP-reward
  transitions/s through :class:`VecRewardWrapper` counting only the wrapper's own time (the reward path:
  collecting frames, preprocessing, the forward pass, holding scores), with the sub-envs' stepping and
  rendering timed apart;
- **quality**: Spearman correlation between the CLIP reward and the task's progress (minus the task
  distance) and success, per step of scripted-expert, noisy-expert and random rollouts, for the mini CLIP,
  ViT-B-32 with random weights (a control: near zero) and any pretrained model whose weights are cached;
- **policy**: SAC on the mini CLIP reward alone next to SAC on the env's reward, same steps and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.config import run_metadata
from robofeedback.methods.bench import prompts, train_entry
from robofeedback.methods.clip.model import ClipReward

GOALS = {
    "panda:PandaReach-v3": ("the gripper touches the green target", "the gripper is far from the green target"),
    "panda:PandaPush-v3": ("the cube is on the green target", "the cube is far from the green target"),
    "metaworld:reach": ("the gripper touches the red target", "the gripper is far from the red target"),
    "metaworld:drawer-open": ("the drawer is open", "the drawer is closed"),
    "metaworld:drawer-close": ("the drawer is closed", "the drawer is open"),
}
DISTANCE = {"panda:PandaReach-v3": "ee_to_target", "panda:PandaPush-v3": "object_to_target"}
MODELS = [("mini", None), ("ViT-B-32", "random"), ("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k")]


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on the CLIP reward of the entry's ``goal`` and ``baseline`` prompts (``alpha`` 0.5, ``scale`` 10 by
    default)."""
    goal, baseline = prompts(entry)
    reward = ClipReward(goal, baseline, alpha=entry.get("alpha", 0.5), scale=entry.get("scale", 10.0))
    return {**train_entry(entry, folder, reward), "goal": goal, "baseline": baseline}


def speed(
    n_envs: int = 8,
    steps: int = 30,
    spec: str = "panda:PandaReach-v3",
    models: list[tuple[str, str | None]] = MODELS[:2],
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> dict[str, Any]:
    """Raw encoder images/s against the wrapper's reward-path transitions/s, per model (default: the mini CLIP and
    ViT-B-32 with random weights) and precision."""
    import torch
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from robofeedback.rl import VecRewardWrapper
    from robofeedback.rl.train import make_vec_env

    class TimedEnvs(VecEnvWrapper):
        """Times the sub-envs' step (simulation and rendering) so that the wrapper's own time can be taken apart."""

        seconds = 0.0

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            start = time.perf_counter()
            out = self.venv.step_wait()
            TimedEnvs.seconds += time.perf_counter() - start
            return out

    # One thread, as `train` runs (torch_threads: 1). With two, every op of the forward pass waits at a thread
    # barrier that sleeps once simulation runs between calls: measured here, 8 mini-CLIP frames took 40 ms back to
    # back but 220 ms between renders with 2 threads, against 18 and 21 ms with 1.
    torch.set_num_threads(1)
    rows = []
    for model, pretrained in models:
        for precision in precisions:
            reward = ClipReward(GOALS[spec][0], model=model, pretrained=pretrained, precision=precision)
            size = reward.image_size
            frames = np.random.default_rng(0).integers(0, 256, (n_envs, size, size, 3), dtype=np.uint8)
            reward.embed_images(frames)  # warm-up
            start = time.perf_counter()
            repeats = max(3, steps // 3)
            for _ in range(repeats):
                reward.embed_images(frames)
            raw = repeats * n_envs / (time.perf_counter() - start)

            venv = TimedEnvs(make_vec_env(spec, n_envs, seed=0, env_kwargs={"flatten": True, "render_size": size}))
            env = VecRewardWrapper(venv, reward)
            env.reset()
            env.step(np.zeros((n_envs, 3)))
            TimedEnvs.seconds = 0.0
            start = time.perf_counter()
            for _ in range(steps):
                env.step(np.stack([env.action_space.sample() for _ in range(n_envs)]))
            total = time.perf_counter() - start
            env.close()
            row = {
                "model": f"{model}/{pretrained}" if pretrained else model,
                "image_size": size,
                "precision": precision,
                "n_envs": n_envs,
                "encode_image_images_per_s": round(raw, 1),
                "wrapper_reward_path_transitions_per_s": round(steps * n_envs / (total - TimedEnvs.seconds), 1),
                "sub_envs_step_and_render_transitions_per_s": round(steps * n_envs / TimedEnvs.seconds, 1),
                "end_to_end_transitions_per_s": round(steps * n_envs / total, 1),
            }
            row["wrapper_vs_raw"] = round(row["wrapper_reward_path_transitions_per_s"] / raw, 3)
            rows.append(row)
            print(json.dumps(row))
    return {"spec": spec, "rows": rows}


def _rollout_frames(spec: str, sizes: list[int], episodes: int, every: int, seed: int) -> dict[str, Any]:
    """Every ``every``-th step's progress, success and frames (one copy of the env per frame size, stepped in
    lockstep) from scripted-expert, noisy-expert and random episodes."""
    from robofeedback.envs import make
    from robofeedback.envs.experts import expert

    panda = spec.startswith("panda")
    kwargs = {"terminate_on_success": False, "flatten": True} if panda else {"max_episode_steps": 150}
    envs = [make(spec, seed=seed, render_size=size, **kwargs) for size in sizes]
    data: dict[str, Any] = {"progress": [], "success": [], "kind": [], "frames": {size: [] for size in sizes}}
    for k, (kind, noise) in enumerate((("expert", 0.0), ("noisy expert", 0.5), ("random", None))):
        for episode in range(episodes):
            episode_seed = seed + 100 * k + episode
            obs = [env.reset(seed=episode_seed)[0] for env in envs][0]
            act = expert(envs[0], noise, seed=episode_seed) if noise is not None else None
            rng = np.random.default_rng(episode_seed)
            low, high = envs[0].action_space.low, envs[0].action_space.high
            done, t = False, 0
            while not done:
                action = act(obs) if act is not None else rng.uniform(low, high).astype(np.float32)
                steps = [env.step(action) for env in envs]
                obs, _, terminated, truncated, info = steps[0]
                done = terminated or truncated
                if t % every == 0:
                    data["progress"].append(-info["factors"][DISTANCE.get(spec, "obj_to_target")])
                    data["success"].append(float(info.get("success", False)))
                    data["kind"].append(kind)
                    for size, env in zip(sizes, envs, strict=True):
                        data["frames"][size].append(env.render())
                t += 1
    for env in envs:
        env.close()
    return data


def quality(episodes: int = 4, seed: int = 0) -> dict[str, Any]:
    """Spearman correlations of each model's CLIP reward with progress and success, per task."""
    import torch
    from scipy.stats import spearmanr

    from robofeedback.methods.clip.model import ClipReward, load_clip

    torch.set_num_threads(2)
    available = []
    for model, pretrained in MODELS:
        try:
            load_clip(model, pretrained)
            available.append((model, pretrained))
        except (FileNotFoundError, RuntimeError) as err:
            print(f"skipping {model}/{pretrained}: weights not available here ({str(err).splitlines()[0][:120]})")
    rows = []
    for spec, (goal, baseline) in GOALS.items():
        rewards = {
            (model, pretrained, alpha): ClipReward(goal, baseline, alpha, model=model, pretrained=pretrained)
            for model, pretrained in available
            for alpha in (0.0, 1.0)
        }
        sizes = sorted({r.image_size for r in rewards.values()})
        every = 3 if spec.startswith("panda") else 9
        data = _rollout_frames(spec, sizes, episodes, every, seed)
        progress, success = np.array(data["progress"]), np.array(data["success"])
        embeddings = {}
        for (model, pretrained, alpha), reward in rewards.items():
            if (model, pretrained) not in embeddings:  # one forward pass per model; alpha only changes the formula
                embeddings[model, pretrained] = reward.embed_images(np.stack(data["frames"][reward.image_size]))
            values = reward.reward_from_embeddings(embeddings[model, pretrained])
            row = {
                "task": spec,
                "model": f"{model}/{pretrained}" if pretrained else model,
                "alpha": alpha,
                "goal": goal,
                "baseline": baseline,
                "frames": len(values),
                "spearman_progress": round(float(spearmanr(values, progress).statistic), 3),
                "spearman_success": round(float(spearmanr(values, success).statistic), 3)
                if success.std() > 0
                else None,
                "success_fraction": round(float(success.mean()), 3),
            }
            rows.append(row)
            print(json.dumps(row))
    return {"episodes_per_kind": episodes, "rows": rows}


POLICY_RUNS = {
    # The true-reward baseline is the family default (SAC + HER on the sparse reward); both run episodes to the
    # time limit, since a reward that is positive everywhere would otherwise teach the agent to avoid success.
    "panda:PandaReach-v3": {"steps": 12000, "config": {"env_kwargs": {"terminate_on_success": False}}},
    "metaworld:reach": {"steps": 30000, "config": {"env_kwargs": {"max_episode_steps": 150}}},
    "metaworld:drawer-close": {"steps": 20000, "config": {"env_kwargs": {"max_episode_steps": 150}}},
}


def policy(out: Path, seed: int = 0, runs: dict[str, dict] | None = None) -> dict[str, Any]:
    """SAC on the mini CLIP reward (alpha 0.5 against the 'far' prompt) and on the env's reward, same budget."""
    from robofeedback.rl.train import train

    rows = []
    for spec, settings in (runs or POLICY_RUNS).items():
        goal, baseline = GOALS[spec]
        config = {"eval_every": settings["steps"] // 6, "eval_episodes": 20, "video_episodes": 1, **settings["config"]}
        for method in ("true reward", "clip"):
            reward = ClipReward(goal, baseline, alpha=0.5, scale=10.0) if method == "clip" else "env"
            run_dir = out / "runs" / f"{spec.replace(':', '-')}_{method.replace(' ', '-')}_{seed}"
            result = train(
                spec, reward=reward, total_steps=settings["steps"], seed=seed, out_dir=run_dir, config=config
            )
            curve = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
            row = {
                "task": spec,
                "method": method,
                "steps": result.steps,
                "success_rate": result.final_eval.get("success_rate"),
                "wall_time_s": result.wall_time_s,
                "git_commit": run_metadata()["git_commit"],
                "curve": curve,
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}))
    return {"seed": seed, "goals": {spec: GOALS[spec] for spec in (runs or POLICY_RUNS)}, "rows": rows}


def _plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    from robofeedback.rl.plots import save_figure, task_panels

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        for row in (r for r in rows if r["task"] == task):
            ax.plot(
                [c["steps"] for c in row["curve"]],
                [c.get("success_rate", np.nan) for c in row["curve"]],
                marker="o",
                label=f"SAC, {row['method']}",
            )
        ax.set(title=task, xlabel="env steps", ylabel="success rate (20 eval episodes)", ylim=(-0.05, 1.05))
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def report(results: dict[str, Any], out: Path) -> Path:
    lines = ["# VLM-RM (CLIP reward) on this machine", ""]
    if "speed" in results:
        lines += [
            "## Speed",
            "",
            "| model | precision | n_envs | encode_image img/s | wrapper reward path transitions/s "
            "| wrapper / raw | sub-envs step+render transitions/s | end to end transitions/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in results["speed"]["rows"]:
            lines.append(
                f"| {r['model']} ({r['image_size']}px) | {r['precision']} | {r['n_envs']} | "
                f"{r['encode_image_images_per_s']} | {r['wrapper_reward_path_transitions_per_s']} | "
                f"{r['wrapper_vs_raw']} | {r['sub_envs_step_and_render_transitions_per_s']} | "
                f"{r['end_to_end_transitions_per_s']} |"
            )
        lines.append("")
    if "quality" in results:
        lines += [
            "## Reward quality (Spearman, per step of expert / noisy-expert / random rollouts)",
            "",
            "| task | model | alpha | frames | vs progress | vs success |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["quality"]["rows"]:
            lines.append(
                f"| {r['task']} | {r['model']} | {r['alpha']} | {r['frames']} | {r['spearman_progress']} "
                f"| {r['spearman_success']} |"
            )
        lines.append("")
    if "policy" in results:
        lines += [
            "## SAC on the mini CLIP reward alone",
            "",
            "| task | reward | steps | success rate | wall time s |",
            "|---|---|---|---|---|",
        ]
        for r in results["policy"]["rows"]:
            lines.append(f"| {r['task']} | {r['method']} | {r['steps']} | {r['success_rate']} | {r['wall_time_s']} |")
        lines += ["", "![learning curves](clip_policy_curves.png)", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=["speed", "quality", "policy"], default=[])
    parser.add_argument("--out", default="runs/bench/clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", choices=sorted(POLICY_RUNS), help="policy runs on only these tasks")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # pretrained weights only from the local cache: no downloads
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {task: POLICY_RUNS[task] for task in args.tasks} if args.tasks else None
    results: dict[str, Any] = {}
    for part in ("speed", "quality", "policy"):
        path = out / f"{part}.json"
        if part in (args.parts or ("speed", "quality", "policy")):
            start = time.time()
            result = {
                "speed": speed,
                "quality": lambda: quality(seed=args.seed),
                "policy": lambda: policy(out, seed=args.seed, runs=runs),
            }[part]()
            result.update(wall_time_s=round(time.time() - start, 1), metadata=run_metadata())
            if part == "policy":
                if runs is not None and path.exists():  # keep the other tasks' earlier runs
                    earlier = json.loads(path.read_text())
                    result["rows"] = [r for r in earlier["rows"] if r["task"] not in runs] + result["rows"]
                    result["goals"] = {**earlier["goals"], **result["goals"]}
                _plot_curves(result["rows"], out / "clip_policy_curves.png")
            path.write_text(json.dumps(result, indent=2))
        if path.exists():
            results[part] = json.loads(path.read_text())
    print(f"report: {report(results, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
