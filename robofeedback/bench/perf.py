"""Performance measures for the benchmark suite, each a ratio of two rates taken in the same run.

- ``wrapper_steps``: env steps/s through :class:`~robofeedback.rl.wrappers.VecRewardWrapper` with each reward
  module's reward function, against the same envs unwrapped;
- ``clip_speed``: CLIP-reward transitions/s on the wrapper's reward path against the raw encoder's images/s;
- ``reward_training``: Bradley-Terry training pairs/s (forward, backward and step, every ensemble member)
  against scoring pairs/s (forward only);
- ``cutting_plane``: the maximum-volume-ellipsoid re-centring time per correction at r = 20, against the 50 ms
  goal;
- ``app_roundtrip``: a preference query served and answered over HTTP through the app's endpoints, against
  the same lease and answer made on the store directly;
- ``reward_code``: calls/s of batched reward code on 1000 transitions in its jailed worker, against the same
  function compiled in this process, and the worker's start-up time (interpreter, numpy, the jail, compiling).

``python -m robofeedback.bench.perf [measure ...]`` prints them; ``robofeedback bench`` runs them as entries.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from robofeedback.apps.auto import AutoAnnotator
from robofeedback.bench.throughput import vec_steps_per_second
from robofeedback.data.rollout import collect
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.envs.tasks import task_prompts
from robofeedback.methods.clip.bench import MODELS, speed
from robofeedback.methods.clip.model import ClipReward
from robofeedback.methods.safe_mpc.cutting_plane import CuttingPlaneLearner
from robofeedback.methods.varp.model import AgentRegularizedReward
from robofeedback.rewards.code import CodeReward, call_reward, compile_reward
from robofeedback.rewards.preference import PreferenceData, PreferenceReward

WRAPPED_TASK = "panda:PandaReachDense-v3"
CODE = """
def compute_reward(obs, action, info):
    distance = float(info["factors"]["ee_to_target"])
    return -distance, {"distance": -distance}
"""


def _rate(step: Callable[[], Any], n: int) -> float:
    step()  # warm-up: first calls build graphs and caches
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - start)


def _reward_modules(obs_dim: int, act_dim: int) -> dict[str, Any]:
    prompts = task_prompts(WRAPPED_TASK)
    return {
        # PEBBLE's preferences, HERON and the bi-level lower level score with the same ensemble class
        "preference / HERON": PreferenceReward(obs_dim, act_dim, seed=0),
        "VARP": AgentRegularizedReward(obs_dim, act_dim, agent_reg=0.1, seed=0),
        "reward code (ICPL, bi-level)": CodeReward(CODE),
        "VLM-RM (mini CLIP)": ClipReward(prompts["goal"], prompts["baseline"], alpha=0.5),
    }


def wrapper_steps(n_envs: int = 4, steps: int = 200) -> dict[str, Any]:
    """Steps/s of ``n_envs`` panda reach envs with each reward module's reward, each against the bare envs measured
    just before it (rendering, which only the CLIP reward asks for, is counted in its rate)."""
    torch.set_num_threads(1)
    make_env = functools.partial(make, WRAPPED_TASK, seed=0, flatten=True, render_size=96)
    probe = make_env()
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    rows = {}
    for name, reward in _reward_modules(obs_dim, act_dim).items():
        n = (steps // 4 if reward.needs_frames else steps) * n_envs
        raw = vec_steps_per_second(make_env, n_envs, n)
        wrapped = vec_steps_per_second(make_env, n_envs, n, reward)
        rows[name] = {"steps_per_s": round(wrapped, 1), "unwrapped_steps_per_s": round(raw, 1)}
        rows[name]["ratio"] = round(wrapped / raw, 3)
    return {
        "measure": "wrapper_steps",
        "what": f"env steps/s through VecRewardWrapper vs unwrapped ({WRAPPED_TASK}, {n_envs} envs)",
        "modules": rows,
    }


def clip_speed(n_envs: int = 4, steps: int = 10) -> dict[str, Any]:
    (row,) = speed(n_envs=n_envs, steps=steps, models=MODELS[:1], precisions=("fp32",))["rows"]
    return {
        "measure": "clip_speed",
        "what": f"mini CLIP reward transitions/s on the wrapper's path vs raw encode_image images/s ({n_envs} envs)",
        "value": row["wrapper_reward_path_transitions_per_s"],
        "unit": "transitions/s",
        "reference": row["encode_image_images_per_s"],
        "reference_unit": "images/s",
        "ratio": row["wrapper_vs_raw"],
    }


def _synthetic_pairs(n: int, length: int, obs_dim: int, act_dim: int, seed: int):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2, length + 1, obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, 2, length, act_dim)).astype(np.float32)
    weights = rng.normal(size=obs_dim)
    returns = obs[:, :, 1:] @ weights
    values = ["a" if r[0].sum() > r[1].sum() else "b" for r in returns]

    pairs = [tuple(SimpleNamespace(obs=obs[i, k], actions=actions[i, k]) for k in (0, 1)) for i in range(n)]
    return PreferenceData.from_pairs(pairs, values)


def reward_training(pairs: int = 1000, length: int = 25, epochs: int = 3) -> dict[str, Any]:
    """PEBBLE's default ensemble (3 x 3 layers of 256) on ``pairs`` synthetic 25-step pairs, one torch thread."""
    torch.set_num_threads(1)
    data = _synthetic_pairs(pairs, length, obs_dim=18, act_dim=4, seed=0)
    model = PreferenceReward(18, 4, seed=0, stop_accuracy=1.01)
    model.fit(data, max_epochs=1)  # warm-up
    start = time.perf_counter()
    model.fit(data, max_epochs=epochs)
    train_rate = epochs * pairs / (time.perf_counter() - start)
    score_rate = _rate(lambda: model.predict_proba(data), 3) * pairs
    return {
        "measure": "reward_training",
        "what": f"Bradley-Terry training pairs/s vs scoring pairs/s (3 x MLP 256x3, {length}-step segments)",
        "value": round(train_rate, 1),
        "unit": "pairs/s trained",
        "reference": round(score_rate, 1),
        "reference_unit": "pairs/s scored",
        "ratio": round(train_rate / score_rate, 3),
    }


def cutting_plane(r: int = 20, corrections: int = 15, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Central cuts in random directions through the current guess in the box [-1, 1]^r, one re-centring each, in
    ``repeats`` fresh learners; the median over all re-centrings (this machine's timings jump by a third from one
    run to the next, and the median is what a person correcting the robot mostly waits)."""
    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(repeats):
        learner = CuttingPlaneLearner(-np.ones(r), np.ones(r), epsilon=1e-3)
        for _ in range(corrections):
            for _ in range(2):  # a correction adds its cut and a feasibility cut
                h = rng.normal(size=r)
                learner.add_cut(h, float(h @ learner.theta) + 0.05)
            start = time.perf_counter()
            learner.recentre()
            seconds.append(time.perf_counter() - start)
    ms, mean, slowest = (1000 * float(f(seconds)) for f in (np.median, np.mean, np.max))
    return {
        "measure": "cutting_plane",
        "what": f"MVE re-centring per correction, r = {r}, median of {len(seconds)} ({repeats} x {corrections} "
        f"corrections; mean {mean:.1f} ms, slowest {slowest:.1f} ms) vs the 50 ms goal",
        "value": round(ms, 1),
        "unit": "ms per correction",
        "reference": 50.0,
        "reference_unit": "ms (goal)",
        "ratio": round(ms / 50.0, 3),
    }


def app_roundtrip(queries: int = 20) -> dict[str, Any]:
    """Preference queries answered over HTTP by :class:`~robofeedback.apps.auto.AutoAnnotator` (one request
    serves and answers each), against the store's own lease and answer for as many queries."""
    from robofeedback.apps.annotate import AppServer

    (trajectory,) = collect(make(WRAPPED_TASK, seed=0), None, n_episodes=1, seed=0)
    segments = [trajectory.segment(s, s + 10) for s in (0, 10, 20, 30)]
    with tempfile.TemporaryDirectory() as folder:
        store = FeedbackStore(Path(folder) / "feedback.db")
        ids = store.add_segments(segments, run="perf")

        def post() -> None:
            for i in range(queries):
                store.add_query("preference", [ids[i % 2], ids[2 + i % 2]], run="perf")

        post()
        start = time.perf_counter()
        while (query := store.lease_query("script:direct")) is not None:
            store.answer_query(query.id, "script:direct", value="a")
        direct = (time.perf_counter() - start) / queries
        post()
        with AppServer(store, port=0) as server:
            annotator = AutoAnnotator(server.url, store)
            start = time.perf_counter()
            answered = annotator.answer_pending()
            http = (time.perf_counter() - start) / answered
        store.close()
    return {
        "measure": "app_roundtrip",
        "what": f"a preference query served and answered over HTTP vs on the store directly ({queries} queries)",
        "value": round(1000 * http, 1),
        "unit": "ms per query (HTTP)",
        "reference": round(1000 * direct, 2),
        "reference_unit": "ms per query (store)",
        "ratio": round(http / direct, 1),
    }


BATCHED_CODE = """
import numpy as np

def compute_reward(obs, action, info):
    distance = np.linalg.norm(obs[:, 6:9] - obs[:, 3:6], axis=1)
    effort = 0.01 * np.square(action).sum(axis=1)
    return -distance - effort, {"distance": -distance, "effort": -effort}
"""


def reward_code(batch: int = 1000, calls: int = 50, starts: int = 10) -> dict[str, Any]:
    """Batched reward code on ``batch`` transitions of a panda-reach-sized observation (18 numbers), through the
    jailed worker and called in this process; start-up is the median of ``starts`` fresh workers."""
    rng = np.random.default_rng(0)
    obs, action = rng.normal(size=(batch, 18)).astype(np.float32), rng.normal(size=(batch, 4)).astype(np.float32)
    info = [{"factors": {"ee_to_target": 0.1}} for _ in range(batch)]
    startup = []
    for _ in range(starts):
        start = time.perf_counter()
        CodeReward(BATCHED_CODE, batched=True).close()
        startup.append(time.perf_counter() - start)
    reward = CodeReward(BATCHED_CODE, batched=True)
    jailed = _rate(lambda: reward.compute(obs, action, info), calls)
    reward.close()
    fn = compile_reward(BATCHED_CODE)
    local = _rate(lambda: call_reward(fn, obs, action, info, True, batch), calls)
    return {
        "measure": "reward_code",
        "what": f"batched reward-code calls/s on {batch} transitions in the jailed worker vs in this process; "
        f"worker start-up median {1000 * float(np.median(startup)):.0f} ms of {starts}",
        "value": round(jailed, 1),
        "unit": "calls/s (jailed worker)",
        "reference": round(local, 1),
        "reference_unit": "calls/s (in process)",
        "ratio": round(jailed / local, 3),
        "startup_ms": round(1000 * float(np.median(startup)), 1),
    }


MEASURES: dict[str, Callable[..., dict[str, Any]]] = {
    "wrapper_steps": wrapper_steps,
    "clip_speed": clip_speed,
    "reward_training": reward_training,
    "cutting_plane": cutting_plane,
    "app_roundtrip": app_roundtrip,
    "reward_code": reward_code,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measures", nargs="*", choices=sorted(MEASURES), help="default: all")
    args = parser.parse_args(argv)
    for name in args.measures or MEASURES:
        print(json.dumps(MEASURES[name]()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
