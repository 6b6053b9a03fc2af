"""VLM-RM's bench section: SAC on the CLIP reward, and the method's own study of the reward, as suite entries.

``robofeedback bench --suite clip`` runs ``configs/bench/suites/clip.yaml``. An entry of method ``clip`` does what
its ``study:`` says (:class:`ClipEntry` lists what it accepts):

- ``train`` (the default): SAC on the CLIP reward of the entry's ``goal`` and ``baseline`` prompts;
- ``speed``: raw ``encode_image`` images/s at batch size ``n_envs`` (fp32 and bf16), and CLIP-reward
  transitions/s through :class:`VecRewardWrapper` counting only the wrapper's own time (the reward path:
  collecting frames, preprocessing, the forward pass, holding scores), with the sub-envs' stepping and
  rendering timed apart (``steps`` vector steps);
- ``quality``: Spearman correlation between the CLIP reward and the task's progress (minus the task
  distance) and success, per step of scripted-expert, noisy-expert and random rollouts (``episodes`` of each),
  for the mini CLIP, ViT-B-32 with random weights (a control: near zero) and any pretrained model whose weights
  are cached;
- ``policy``: SAC on the mini CLIP reward alone next to SAC on the env's reward, same ``steps`` and settings.

The studies' tables (and the policy study's learning curves) are the method's section of the suite's report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnvWrapper

from robofeedback.envs import make
from robofeedback.envs.experts import expert
from robofeedback.envs.tasks import task_prompts
from robofeedback.feedback.clip_model import load_clip
from robofeedback.methods.bench import Entry, EntryError, prompts, train_entry
from robofeedback.methods.clip.model import ClipReward
from robofeedback.rewards.metrics import pearson_distance
from robofeedback.rl import VecRewardWrapper
from robofeedback.rl.plots import save_figure, task_panels
from robofeedback.rl.train import make_vec_env, train

STUDIES = ("train", "speed", "quality", "policy")
DISTANCE = {"panda:PandaReach-v3": "ee_to_target", "panda:PandaPush-v3": "object_to_target"}
ALPHAS = (0.0, 0.5, 1.0)  # the goal-baseline projection's strength, as VLM-RM compares it
MODELS = [("mini", None), ("ViT-B-32", "random"), ("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k")]
POLICY_CURVES = "clip_policy_curves.png"


@dataclass(frozen=True, kw_only=True)
class ClipEntry(Entry):
    """What an entry of method ``clip`` accepts besides the suite's keys: the ``study`` it runs, the prompts, the
    reward's ``alpha`` and ``scale``, the speed study's ``n_envs``, the quality study's ``episodes`` per kind of
    rollout, and the CLIP ``device`` (default: the GPU when there is one)."""

    steps: int | None = None
    study: str = "train"
    goal: str | None = None
    baseline: str | None = None
    alpha: float = 0.5
    scale: float = 10.0
    n_envs: int = 8
    episodes: int = 4
    device: str | None = None

    def __post_init__(self) -> None:
        if self.study not in STUDIES:
            raise EntryError(f"unknown clip study {self.study!r}: choose from {', '.join(STUDIES)}")
        if self.study in ("train", "policy") and self.steps is None:
            raise EntryError(f"a clip {self.study} entry needs steps: (env steps to train)")


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Run the entry's study into ``folder``; returns its result row."""
    settings = ClipEntry.from_dict(entry)
    if settings.study != "train":
        # The studies take pretrained weights only from the local cache: no downloads. huggingface_hub reads this
        # when it is first imported, so it holds in a process whose first CLIP work is a study (the clip suite's).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if settings.study == "speed":
        return speed(settings.task, settings.goal, settings.n_envs, settings.steps or 30, device=settings.device)
    goal, baseline = prompts(entry)
    if settings.study == "quality":
        return quality(settings.task, goal, baseline, settings.episodes, settings.seed, settings.device)
    reward = ClipReward(goal, baseline, alpha=settings.alpha, scale=settings.scale, device=settings.device)
    if settings.study == "policy":
        return policy(settings.task, reward, settings.steps, settings.config, folder, settings.seed)
    return {**train_entry(entry, folder, reward), "goal": goal, "baseline": baseline}


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


def speed(
    spec: str = "panda:PandaReach-v3",
    goal: str | None = None,
    n_envs: int = 8,
    steps: int = 30,
    models: list[tuple[str, str | None]] = MODELS[:2],
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    device: str | None = None,
) -> dict[str, Any]:
    """Raw encoder images/s against the wrapper's reward-path transitions/s, per model (default: the mini CLIP and
    ViT-B-32 with random weights) and precision, scoring ``goal`` (default: the task's known goal)."""
    goal = goal or task_prompts(spec)["goal"]
    # One thread, as `train` runs (torch_threads: 1). With two, every op of the forward pass waits at a thread
    # barrier that sleeps once simulation runs between calls: measured here, 8 mini-CLIP frames took 40 ms back to
    # back but 220 ms between renders with 2 threads, against 18 and 21 ms with 1.
    torch.set_num_threads(1)
    rows = []
    for model, pretrained in models:
        for precision in precisions:
            reward = ClipReward(goal, model=model, pretrained=pretrained, precision=precision, device=device)
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
    panda = spec.startswith("panda")
    kwargs = {"terminate_on_success": False, "flatten": True} if panda else {"max_episode_steps": 150}
    envs = [make(spec, seed=seed, render_size=size, **kwargs) for size in sizes]
    data: dict[str, Any] = {
        "progress": [],
        "success": [],
        "env_reward": [],
        "kind": [],
        "frames": {size: [] for size in sizes},
    }
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
                    data["env_reward"].append(float(info["env_reward"]))
                    data["kind"].append(kind)
                    for size, env in zip(sizes, envs, strict=True):
                        data["frames"][size].append(env.render())
                t += 1
    for env in envs:
        env.close()
    return data


def quality(
    spec: str,
    goal: str,
    baseline: str,
    episodes: int = 4,
    seed: int = 0,
    device: str | None = None,
    models: list[tuple[str, str | None]] = MODELS,
) -> dict[str, Any]:
    """Spearman correlations of each model's CLIP reward (alpha 0, 0.5 and 1) with progress and success on
    ``spec``, and its EPIC distance to the env's reward (:mod:`robofeedback.rewards.metrics`; a function of the
    frame after the step, so canonicalisation is a shift), per step, for the ``models`` whose weights load here
    (default: all of :data:`MODELS`); the result names the ones that did not (``missing``)."""
    from scipy.stats import spearmanr

    torch.set_num_threads(2)
    available, missing = [], []
    for model, pretrained in models:
        try:
            load_clip(model, pretrained)
            available.append((model, pretrained))
        except (FileNotFoundError, RuntimeError) as err:
            missing.append(f"{model}/{pretrained}")
            print(f"skipping {model}/{pretrained}: weights not available here ({str(err).splitlines()[0][:120]})")
    rewards = {
        (model, pretrained, alpha): ClipReward(goal, baseline, alpha, model=model, pretrained=pretrained, device=device)
        for model, pretrained in available
        for alpha in ALPHAS
    }
    sizes = sorted({r.image_size for r in rewards.values()})
    every = 3 if spec.startswith("panda") else 9
    data = _rollout_frames(spec, sizes, episodes, every, seed)
    progress, success = np.array(data["progress"]), np.array(data["success"])
    embeddings = {}
    rows = []
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
            "spearman_success": round(float(spearmanr(values, success).statistic), 3) if success.std() > 0 else None,
            "success_fraction": round(float(success.mean()), 3),
            "epic_distance": round(pearson_distance(values, data["env_reward"]), 3),
        }
        rows.append(row)
        print(json.dumps(row))
    return {"episodes_per_kind": episodes, "rows": rows, "missing": missing}


def policy(spec: str, reward: ClipReward, steps: int, config: dict[str, Any], folder: Path, seed: int = 0) -> dict:
    """SAC on ``reward`` and on the env's reward, same budget; the true-reward baseline is the family default (SAC +
    HER on the sparse reward). Both should run episodes to the time limit (``config``), since a reward that is
    positive everywhere would otherwise teach the agent to avoid success."""
    config = {"eval_every": steps // 6, "eval_episodes": 20, "video_episodes": 1, **config}
    runs = []
    for method in ("true reward", "clip"):
        run_dir = folder / method.replace(" ", "-")
        result = train(
            spec,
            reward=reward if method == "clip" else "env",
            total_steps=steps,
            seed=seed,
            out_dir=run_dir,
            config=config,
        )
        curve = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
        run = {
            "task": spec,
            "method": method,
            "steps": result.steps,
            "success_rate": result.final_eval.get("success_rate"),
            "wall_time_s": result.wall_time_s,
            "curve": curve,
        }
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k != "curve"}))
    return {"runs": runs}


def _plot_curves(runs: list[dict[str, Any]], path: Path) -> None:
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        for run in (r for r in runs if r["task"] == task):
            ax.plot(
                [c["steps"] for c in run["curve"]],
                [c.get("success_rate", np.nan) for c in run["curve"]],
                marker="o",
                label=f"SAC, {run['method']}",
            )
        ax.set(title=task, xlabel="env steps", ylabel="success rate (20 eval episodes)", ylim=(-0.05, 1.05))
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The studies' tables, as a section of the suite's report; the policy study's learning curves are drawn next to
    the report (the folder above the entries' ``runs/``)."""
    studies: dict[str, list[dict[str, Any]]] = {study: [] for study in STUDIES}
    for row in rows:
        studies[row["config"].get("study", "train")].append(row)
    lines = []
    if studies["speed"]:
        lines += [
            "## VLM-RM: CLIP reward speed",
            "",
            "| model | precision | n_envs | encode_image img/s | wrapper reward path transitions/s "
            "| wrapper / raw | sub-envs step+render transitions/s | end to end transitions/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for row in studies["speed"] for r in row["rows"]):
            lines.append(
                f"| {r['model']} ({r['image_size']}px) | {r['precision']} | {r['n_envs']} | "
                f"{r['encode_image_images_per_s']} | {r['wrapper_reward_path_transitions_per_s']} | "
                f"{r['wrapper_vs_raw']} | {r['sub_envs_step_and_render_transitions_per_s']} | "
                f"{r['end_to_end_transitions_per_s']} |"
            )
        lines.append("")
    if studies["quality"]:
        lines += [
            "## VLM-RM: reward quality per step of expert / noisy-expert / random rollouts",
            "",
            "Spearman correlation with progress and success, and EPIC distance to the env's reward (lower is "
            "closer), per model and projection strength alpha. VLM-RM's claims are that larger pretrained models "
            "give better zero-shot rewards and that alpha > 0 lowers EPIC distance. The mini CLIP was trained on "
            "these tasks' renders, so it is not zero-shot.",
            "",
            "| task | model | alpha | frames | vs progress | vs success | EPIC |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in (r for row in studies["quality"] for r in row["rows"]):
            lines.append(
                f"| {r['task']} | {r['model']} | {r['alpha']} | {r['frames']} | {r['spearman_progress']} "
                f"| {r['spearman_success']} | {r.get('epic_distance', '-')} |"
            )
        missing = sorted({m for row in studies["quality"] for m in row.get("missing", [])})
        lines += [""] + [f"Not testable here: no {m} weights in the local cache." for m in missing] + [""]
    if studies["policy"]:
        runs = [run for row in studies["policy"] for run in row["runs"]]
        _plot_curves(runs, Path(studies["policy"][0]["folder"]).parents[1] / POLICY_CURVES)
        lines += [
            "## VLM-RM: SAC on the mini CLIP reward alone",
            "",
            "| task | reward | steps | success rate | wall time s |",
            "|---|---|---|---|---|",
        ]
        for r in runs:
            lines.append(f"| {r['task']} | {r['method']} | {r['steps']} | {r['success_rate']} | {r['wall_time_s']} |")
        lines += ["", f"![learning curves]({POLICY_CURVES})", ""]
    return lines
