"""How close a learned or zero-shot reward is to the env's own reward, measured on a coverage distribution.

Three measures, each against the env's reward (the ground truth, ``info["env_reward"]``):

- **held-out preference accuracy**: over random pairs of fixed-length segments of the coverage episodes (none of
  which the reward was trained on), how often the reward's segment return orders the pair as the true return does
  (pairs whose true returns tie are left out);
- **rank correlation**: Spearman's rho between the reward's and the true return per coverage episode;
- **EPIC distance** (Gleave et al. 2021): the Pearson distance sqrt((1 - rho) / 2) between the two rewards after
  canonicalisation, C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')], with
  S, S' drawn from the coverage states and A from its actions, rho taken over the coverage transitions. A model
  with ``rewards_of(obs, actions)`` (a :class:`~robofeedback.protocols.LearnedReward`: a function of the state and
  action) is canonicalised in full, with the expectation over ``actions`` of the coverage actions. Rewards read
  from the env's info or from the frame after the step (the env's own, reward code, HERON's heuristic, CLIP) are
  taken to be functions of the action and the next state, for which canonicalisation is a constant shift and
  Pearson's rho needs none; a term in the state before the step (a ``progress`` factor) is then not removed, so
  their distance counts potential shaping that full EPIC would not.

The coverage distribution (:func:`coverage`) is half episodes of the trained policy acting stochastically and
half of uniform random actions, on the run's ``coverage`` random stream.

>>> rng = np.random.default_rng(0)
>>> true = rng.normal(size=200)
>>> round(pearson_distance(2 * true + 3, true), 6), round(pearson_distance(-true, true), 6)
(0.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robofeedback.data.rollout import collect
from robofeedback.data.trajectory import Trajectory, flat_obs
from robofeedback.protocols import LearnedReward, RewardFunction, Transitions

GAMMA = 0.99


def coverage(env: gym.Env, policy: Any, episodes: int, seed: int, frames: bool = False) -> list[Trajectory]:
    """``episodes`` whole episodes, the first half of ``policy`` acting stochastically (all random actions when
    ``policy`` is None), the rest of uniform random actions; with ``frames`` every step's frame is kept. The
    policy's sampling draws from torch's random state, which this seeds too: the same seed, the same episodes."""
    env.action_space.seed(seed)
    torch.manual_seed(seed)
    acting = episodes // 2 if policy is not None else 0
    out = collect(env, policy, n_episodes=acting, render=frames, deterministic=False, seed=seed) if acting else []
    random_seed = seed + 1 if acting else seed
    return out + collect(env, None, n_episodes=episodes - acting, render=frames, seed=random_seed)


def transitions(episode: Trajectory) -> Transitions:
    """An episode's steps as one batch, each with the frame after the step when the episode has frames."""
    obs, n = episode.obs, len(episode.actions)
    before = {k: v[:n] for k, v in obs.items()} if isinstance(obs, dict) else obs[:n]
    after = {k: v[1:] for k, v in obs.items()} if isinstance(obs, dict) else obs[1:]
    frames = episode.frames[1:] if episode.frames is not None else None
    return Transitions(before, episode.actions, after, list(episode.infos), frames=frames)


def pearson_distance(a: np.ndarray, b: np.ndarray) -> float:
    """sqrt((1 - rho) / 2) for Pearson's rho of ``a`` and ``b``; 0.5 (rho = 0) when either is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return float(np.sqrt(0.5))
    rho = float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None when either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x), dtype=np.float64)
    _, tie, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=ranks) / counts)[tie]


def canonical(reward: RewardFunction, batches: list[Transitions], values: np.ndarray, n_actions: int, seed: int):
    """The reward's canonical values on the batches' transitions (``values``: its raw ones), and whether they were
    canonicalised in full (a model of state and action) or by a shift (assumed a function of action and next
    state, which Pearson's rho ignores)."""
    if not isinstance(reward, LearnedReward):
        return values, "shift"
    states = np.concatenate([flat_obs(b.obs) for b in batches])
    next_states = np.concatenate([flat_obs(b.next_obs) for b in batches])
    actions = np.concatenate([b.action for b in batches])
    rng = np.random.default_rng(seed)
    sample = actions[rng.choice(len(actions), size=min(n_actions, len(actions)), replace=False)]

    def mean_over_actions(x: np.ndarray) -> np.ndarray:  # E_A R(x, A) for every row of x
        repeated = np.repeat(x, len(sample), axis=0)
        tiled = np.tile(sample, (len(x), 1))
        return reward.rewards_of(repeated, tiled).reshape(len(x), len(sample)).mean(axis=1)

    here, there = mean_over_actions(states), mean_over_actions(next_states)
    return values + GAMMA * there - here - GAMMA * here.mean(), "full"


def reward_metrics(
    reward: RewardFunction,
    episodes: list[Trajectory],
    segment_length: int,
    pairs: int = 500,
    n_actions: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """The three measures of ``reward`` on the coverage ``episodes`` (with frames when the reward needs them):
    ``pref_accuracy`` and the number of ``pref_pairs`` it was taken on, ``rank_correlation``, ``epic_distance``,
    and how the reward was canonicalised (``epic_canonical``: ``full`` or ``shift``)."""
    if reward.needs_frames and any(e.frames is None for e in episodes):
        raise ValueError(f"{type(reward).__name__} needs frames: collect the coverage episodes with frames=True")
    batches = [transitions(e) for e in episodes]
    model = [np.asarray(reward(b), np.float64) for b in batches]
    true = [np.asarray(e.env_rewards, np.float64) for e in episodes]
    flat_model, flat_true = np.concatenate(model), np.concatenate(true)
    values, how = canonical(reward, batches, flat_model, n_actions, seed)
    segments = [
        (m[i : i + segment_length].sum(), t[i : i + segment_length].sum())
        for m, t in zip(model, true, strict=True)
        for i in range(0, len(t) - segment_length + 1, segment_length)
    ]
    accuracy, used = _pair_accuracy(np.array(segments), pairs, seed)
    return {
        "pref_accuracy": accuracy,
        "pref_pairs": used,
        "rank_correlation": spearman([m.sum() for m in model], [t.sum() for t in true]),
        "epic_distance": pearson_distance(values, flat_true),
        "epic_canonical": how,
        "coverage_transitions": len(flat_true),
    }


def _pair_accuracy(segments: np.ndarray, pairs: int, seed: int) -> tuple[float | None, int]:
    """How often the model's segment return (column 0) orders random pairs as the true one (column 1) does."""
    if len(segments) < 2:
        return None, 0
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(segments), size=(2, pairs))
    true = segments[i, 1] - segments[j, 1]
    keep = (i != j) & (np.abs(true) > 1e-9)
    if not keep.any():
        return None, 0
    agree = np.sign(segments[i, 0] - segments[j, 0])[keep] == np.sign(true[keep])
    return float(agree.mean()), int(keep.sum())
