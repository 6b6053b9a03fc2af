"""Env throughput: raw simulator steps/s against steps/s through robofeedback's wrappers, and render frames/s.

Run ``python -m robofeedback.bench.throughput`` (or ``make bench``). It prints
two tables and writes them as JSON to ``runs/bench/throughput.json``. The
reward function is trivial (a constant), so the numbers show the wrappers'
own overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from robofeedback.config import run_metadata
from robofeedback.envs import make
from robofeedback.envs.base import quiet_native_output
from robofeedback.protocols import RewardFunction, Transitions
from robofeedback.rewards.base import FnReward
from robofeedback.rl.wrappers import RewardWrapper, VecRewardWrapper

FAMILIES = {"panda": "panda:PandaPush-v3", "metaworld": "metaworld:push", "bullet": "bullet:HopperBulletEnv-v0"}


def zero_reward(batch: Transitions) -> np.ndarray:
    return np.zeros(len(batch), dtype=np.float32)


def _steps_per_second(env: gym.Env, n: int) -> float:
    with quiet_native_output():  # pybullet locomotion prints its connection arguments on the first reset
        env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(n)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def vec_steps_per_second(
    make_env: Callable[[], gym.Env], n_envs: int, n: int, reward: RewardFunction | None = None
) -> float:
    """Env steps/s of ``n_envs`` envs in a ``DummyVecEnv``, through a :class:`VecRewardWrapper` with ``reward``
    when one is given."""
    venv = DummyVecEnv([make_env] * n_envs)
    if reward is not None:
        venv = VecRewardWrapper(venv, reward)
    with quiet_native_output():
        venv.reset()
    actions = np.stack([venv.action_space.sample() for _ in range(n_envs)])
    start = time.perf_counter()
    for _ in range(n // n_envs):
        venv.step(actions)
    elapsed = time.perf_counter() - start
    venv.close()
    return (n // n_envs) * n_envs / elapsed


def measure_steps(family: str, n: int) -> dict[str, float]:
    spec = FAMILIES[family]
    kwargs = {"flatten": True} if family == "panda" else {}
    zero = FnReward(zero_reward, batched=True)
    row = {
        # the simulator's own env, as the robofeedback adapter builds it, without the contract wrapper
        "native": _steps_per_second(make(spec, seed=0).env, n),
        "robofeedback env": _steps_per_second(make(spec, seed=0, **kwargs), n),
        "RewardWrapper": _steps_per_second(RewardWrapper(make(spec, seed=0, **kwargs), zero), n),
        "DummyVecEnv x1": vec_steps_per_second(lambda: make(spec, seed=0, **kwargs), 1, n),
        "VecRewardWrapper x1": vec_steps_per_second(lambda: make(spec, seed=0, **kwargs), 1, n, zero),
        "VecRewardWrapper x4": vec_steps_per_second(lambda: make(spec, seed=0, **kwargs), 4, n, zero),
    }
    return {k: round(v, 1) for k, v in row.items()}


def measure_render(family: str, size: int, n: int, high_quality: bool) -> float:
    spec = FAMILIES[family]
    quality = {"fast_render": not high_quality} if family == "metaworld" else {"shadows": high_quality}
    env = make(spec, seed=0, render_size=size, **quality)
    env.reset()
    env.render()  # the first frame creates the GL context
    start = time.perf_counter()
    for _ in range(n):
        env.step(env.action_space.sample())
        env.render()
    elapsed = time.perf_counter() - start
    env.close()
    return round(n / elapsed, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="env steps per step-rate measurement")
    parser.add_argument("--frames", type=int, default=60, help="frames per render-rate measurement")
    parser.add_argument("--out", default="runs/bench/throughput.json")
    args = parser.parse_args(argv)

    steps = {family: measure_steps(family, args.steps) for family in FAMILIES}
    columns = list(next(iter(steps.values())))
    print(f"\nenv steps/s (trivial reward; {args.steps} steps each; panda-gym Push, MetaWorld push, pybullet Hopper)")
    print(f"{'family':<10}" + "".join(f"{c:>21}" for c in columns))
    for family, row in steps.items():
        print(f"{family:<10}" + "".join(f"{row[c]:>21.1f}" for c in columns))

    render: dict[str, dict[str, float]] = {}
    for family in FAMILIES:
        for high_quality in (False, True):
            label = f"{family} ({'shadows' if high_quality else 'fast'})"
            render[label] = {str(s): measure_render(family, s, args.frames, high_quality) for s in (84, 128, 224)}
    print(f"\nrender frames/s (step + render; {args.frames} frames each)")
    print(f"{'family':<24}" + "".join(f"{s + ' px':>10}" for s in ("84", "128", "224")))
    for label, row in render.items():
        print(f"{label:<24}" + "".join(f"{row[s]:>10.1f}" for s in ("84", "128", "224")))

    result = {
        "steps_per_second": steps,
        "render_frames_per_second": render,
        "machine": {"cpus": os.cpu_count()},
        "code": run_metadata(),
        "settings": {"steps": args.steps, "frames": args.frames},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {out}")
    return result


if __name__ == "__main__":
    main()
