"""What the loops that write reward code (ICPL, the bi-level video loop) share above the rewards layer: training a
policy on one reward code, with its components traced over training (:func:`train_candidate`).

It trains policies, so it lives with the methods, not in :mod:`robofeedback.rewards` (writing and checking the code
is :mod:`robofeedback.rewards.codegen`); it is a plain module, not a method package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from robofeedback.data.rollout import collect
from robofeedback.envs import make
from robofeedback.rewards.code import INFO_KEYS, CodeReward, RewardCodeError
from robofeedback.rl.train import train
from robofeedback.seeding import stream_seed


class ComponentTrace(BaseCallback):
    """Sums each reward component (the ``reward/<name>`` factors the code reward reports) over every episode."""

    def __init__(self):
        super().__init__()
        self.episodes: list[dict[str, float]] = []
        self.running: dict[int, dict[str, float]] = {}

    def _on_step(self) -> bool:
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            sums = self.running.setdefault(i, {})
            for name, value in info.get("factors", {}).items():
                if name.startswith("reward/"):
                    component = name.removeprefix("reward/")
                    sums[component] = sums.get(component, 0.0) + value
            if done:
                self.episodes.append(self.running.pop(i))
        return True


def component_trace(infos_by_episode: list[dict[str, float]], points: int = 10) -> dict[str, list[float]]:
    """Per-episode sums of each reward component, averaged over ``points`` equal stretches of training."""
    if not infos_by_episode:
        return {}
    chunks = np.array_split(np.arange(len(infos_by_episode)), min(points, len(infos_by_episode)))
    names = list(dict.fromkeys(k for episode in infos_by_episode for k in episode))
    return {
        name: [float(np.mean([infos_by_episode[i].get(name, 0.0) for i in chunk])) for chunk in chunks]
        for name in names
    }


def train_candidate(
    spec: str,
    code: str,
    steps: int,
    seed: int,
    out_dir: str,
    config: dict,
    resume: bool = False,
    frames: bool = False,
    info_keys: Sequence[str] = INFO_KEYS,
) -> dict[str, Any]:
    """Train a policy on ``code``'s reward (reading ``info_keys`` of the env's info) and report the final
    evaluation, the component trace and the video; a reward-code failure during training is returned as the
    candidate's error. One episode of the final policy is saved as ``final_episode.npz`` (with its rendered frames
    when ``frames``); ``resume`` continues a checkpoint in ``out_dir``."""
    reward = CodeReward(code, info_keys=info_keys)
    tracer = ComponentTrace()
    try:
        result = train(
            spec,
            reward=reward,
            total_steps=steps,
            seed=seed,
            out_dir=out_dir,
            config=config,
            resume=resume,
            progress=False,
            callbacks=[tracer],
        )
    except RewardCodeError as e:
        return {"error": str(e)}
    finally:
        reward.close()
    env_kwargs = json.loads((Path(out_dir) / "summary.json").read_text())["env_kwargs"]  # as train made the env
    env = make(spec, seed=stream_seed(seed, "judged"), **env_kwargs)
    episode = collect(env, result.model, n_episodes=1, render=frames, seed=stream_seed(seed, "judged"))[0]
    episode.save(Path(out_dir) / "final_episode.npz")
    return {
        "success_rate": result.final_eval.get("success_rate"),
        "mean_env_return": result.final_eval["mean_env_return"],
        "trace": component_trace(tracer.episodes),
        "video": str(result.video) if result.video else None,
    }
