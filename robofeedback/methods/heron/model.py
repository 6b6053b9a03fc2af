"""HERON: a reward learned from a person's ranking of the task's reward factors (Bukharin et al., arXiv 2309.02632).

A person ranks the env's named factors once, z_1 > z_2 > ... > z_n, each with a sign s_l (+1 a reward,
-1 a cost). Two items A and B, single transitions (as the authors' code compares) or segments with their
per-factor sums (as the paper describes), are compared by the decision tree the ranking induces:

    for l = 1 .. n:
        delta_l = sigma_l * std(z_l)                     (std over the batch being labelled)
        if s_l z_l(A) > s_l z_l(B) + delta_l:  A preferred, decided at level l
        if s_l z_l(B) > s_l z_l(A) + delta_l:  B preferred, decided at level l
        (a difference within the margin goes to level l + 1)
    a tie at every level: no label ("drop"), or "equal"

The preference core's Bradley-Terry ensemble learns a reward from these labels (optionally scaling each pair
by the level that decided it, ``preference: {level_scale: alpha}``), and the policy trains on it: the replay
buffer is relabelled after each update off-policy, the rollout buffer before its advantages on-policy.

The baselines of the paper are here too: the weighted sum r = sum_l s_l beta^(l-1) z_l
(:class:`HeuristicReward`; r = -z_1 - beta z_2 - beta^2 z_3 for three costs), and PEBBLE-style
preferences labelled by the plain sum of the factors (:func:`factor_sum_teacher`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from robofeedback.data.store import FeedbackStore, Query, StoredSegment
from robofeedback.data.trajectory import Segment
from robofeedback.feedback.teachers import Teacher
from robofeedback.protocols import FeedbackSource, RewardFunction, Transitions

GRANULARITIES = ("segment", "transition")
TIES = ("drop", "equal")


def _per_level(value: float | Sequence[float] | dict[str, float] | None, order: list[str], name: str, default):
    """One value per ranked factor, from a scalar, a list in rank order, or a dict by factor name."""
    if value is None:
        return [default(k) for k in order]
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(order))
        if unknown:
            raise ValueError(f"{name} names factors {unknown} that are not ranked ({order})")
        return [value.get(k, default(k)) for k in order]
    if isinstance(value, (int, float)):
        return [value] * len(order)
    values = list(value)
    if len(values) != len(order):
        raise ValueError(f"{name} needs one value per ranked factor ({len(order)}: {order}), got {len(values)}")
    return values


class HierarchicalJudge(FeedbackSource):
    """HERON's comparator: labels pairs by the decision tree of a factor ranking, recording the deciding level.

    ``order`` lists factor names, most important first; ``signs`` (+1 reward, -1 cost; a list in rank order or a
    dict) default to the env's own (``factor_info``, set by :meth:`attach`); ``sigma`` scales each level's margin
    delta_l = sigma_l * std(z_l). ``granularity="transition"`` (the default, as in the authors' code) compares
    single steps (the feedback loop then cuts one-step segments), ``"segment"`` per-factor sums over segments.
    ``ties="drop"`` gives no label when every level ties, ``"equal"`` an equal label. Labels carry
    ``script:heron`` provenance and their ``level`` (1 = the first factor) in the store; :attr:`decided` counts
    the levels.
    """

    def __init__(
        self,
        order: Sequence[str],
        signs: Sequence[int] | dict[str, int] | None = None,
        sigma: float | Sequence[float] | dict[str, float] = 1.0,
        granularity: str = "transition",
        ties: str = "drop",
    ):
        order = list(order)
        if not order or not all(isinstance(k, str) and k for k in order) or len(set(order)) != len(order):
            raise ValueError(f"order must list distinct factor names, most important first, got {order!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
        self.order, self.granularity, self.ties = order, granularity, ties
        self._given_signs = signs
        self.signs = None if signs is None else self._check_signs(_per_level(signs, order, "signs", lambda k: 1))
        self.sigma = np.asarray(_per_level(sigma, order, "sigma", lambda k: 1.0), dtype=np.float64)
        if not np.all(np.isfinite(self.sigma)) or np.any(self.sigma < 0):
            raise ValueError(f"sigma must be finite and >= 0 at every level, got {list(self.sigma)}")
        self.source = "script:heron"
        self.decided: Counter = Counter()  # level (1..n) -> labels it decided; 0 -> full ties

    @staticmethod
    def _check_signs(signs: list) -> np.ndarray:
        if any(s not in (1, -1) for s in signs):
            raise ValueError(f"factor signs must be +1 or -1, got {signs}")
        return np.asarray(signs, dtype=np.float64)

    @classmethod
    def from_ranking(cls, ranking: Any, **kwargs: Any) -> HierarchicalJudge:
        """From a factor-ranking label of the store (what the annotation app's factor-ranking tab writes) or its
        payload: its order, its signs, and its margins as the per-factor sigma (1 where it gives none)."""
        payload = getattr(ranking, "payload", ranking)
        signs, sigma = kwargs.pop("signs", None), kwargs.pop("sigma", 1.0)
        return cls(
            payload["order"], signs=payload.get("signs") or signs, sigma=payload.get("margins") or sigma, **kwargs
        )

    @classmethod
    def from_store(
        cls,
        store: FeedbackStore | str,
        task: str,
        source: str | None = None,
        factors: Sequence[str] | None = None,
        wait_seconds: float = 0.0,
        poll_seconds: float = 1.0,
        **kwargs: Any,
    ):
        """From the latest factor ranking of ``task`` (an env spec) in the store, by ``source`` if given. When there
        is none and ``wait_seconds`` > 0, ask for one (a ``factor_ranking`` query naming ``task`` and its
        ``factors``, which the annotation app's factor-ranking tab shows) and wait up to that long for it."""
        store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        label = store.factor_ranking(task, source)
        if label is None and wait_seconds > 0:
            if not factors:
                raise ValueError("asking people for a factor ranking needs the factors to rank")
            store.add_query("factor_ranking", [], run=f"heron-{task}", meta={"task": task, "factors": list(factors)})
            deadline = time.monotonic() + wait_seconds
            while label is None and time.monotonic() < deadline:
                time.sleep(poll_seconds)
                label = store.factor_ranking(task, source)
        if label is None:
            raise ValueError(
                f"the store holds no factor ranking for {task!r}"
                + (f" by {source}" if source else "")
                + (f" (none came within {wait_seconds:g} s)" if wait_seconds > 0 else "")
            )
        return cls.from_ranking(label, **kwargs)

    @property
    def segment_length(self) -> int | None:
        """1 when comparing single transitions (the feedback loop cuts one-step segments), else the loop's own."""
        return 1 if self.granularity == "transition" else None

    def attach(self, env) -> None:
        """Check the ranking against ``env``'s named factors and take their signs unless given."""
        known = getattr(env, "factor_info", {}) or {}
        unknown = [k for k in self.order if k not in known]
        if unknown:
            raise ValueError(
                f"the factor ranking names {unknown}, which {getattr(env, 'spec_name', 'the env')} does not report; "
                f"its factors are {sorted(known)}"
            )
        if self._given_signs is None:
            self.signs = self._check_signs([known[k].sign for k in self.order])

    # -- the comparison ---------------------------------------------------------------------------------

    def values(self, segment) -> np.ndarray:
        """The ranked factors of one item, sign-adjusted (higher is better): per-factor sums over a segment, or
        the values of a one-step segment at ``granularity="transition"``."""
        if self.signs is None:
            raise ValueError("the factor signs are unknown: give signs= or attach(env) first")
        factors = segment.factors
        missing = [k for k in self.order if k not in factors]
        if missing:
            raise KeyError(f"HERON ranks factors {missing}, but the segment has {sorted(factors)}")
        if self.granularity == "transition" and len(segment) != 1:
            raise ValueError(f"granularity='transition' compares single steps, got a segment of {len(segment)}")
        return self.signs * np.array([float(np.sum(factors[k])) for k in self.order])

    def compare(self, z_a: np.ndarray, z_b: np.ndarray, delta: np.ndarray) -> tuple[str, int]:
        """``("a" | "b", level)`` by the first level whose sign-adjusted difference exceeds its margin
        ``delta``, or ``(tie, 0)`` when none does (tie: "skip" with ``ties="drop"``, else "equal")."""
        for level, (a, b, d) in enumerate(zip(z_a, z_b, delta, strict=True), start=1):
            if a > b + d:
                return "a", level
            if b > a + d:
                return "b", level
        return ("skip" if self.ties == "drop" else "equal"), 0

    def margins(self, items: Sequence) -> np.ndarray:
        """delta_l = sigma_l * std(z_l) over ``items`` (the batch being labelled)."""
        z = np.stack([self.values(item) for item in items])
        return self.sigma * z.std(axis=0)

    def label_many(self, pairs: Sequence[tuple]) -> list[tuple[str, int]]:
        """``(value, level)`` for each pair, margins from the std over every item of ``pairs``."""
        if not pairs:
            return []
        unique = {id(item): item for pair in pairs for item in pair}
        delta = self.margins(list(unique.values()))
        out = [self.compare(self.values(a), self.values(b), delta) for a, b in pairs]
        self.decided.update(level for _, level in out)
        return out

    def level_fractions(self) -> dict[str, float]:
        """The fraction of comparisons decided at each level (by factor name), and of full ties."""
        total = sum(self.decided.values())
        if not total:
            return {}
        out = {f"level {i} ({name})": self.decided[i] / total for i, name in enumerate(self.order, start=1)}
        out["tie at every level"] = self.decided[0] / total
        return out

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        labels = self.label_many([(segments[q.segment_ids[0]], segments[q.segment_ids[1]]) for q in queries])
        for query, (value, level) in zip(queries, labels, strict=True):
            note = f"decided at level {level} ({self.order[level - 1]})" if level else "tie at every level"
            store.answer_query(query.id, self.source, value=value, note=note, level=level or None)


# The authors' reward network (d -> 256 -> 256 -> 1, ReLU, Adam 1e-3) on the observation alone.
MODEL_DEFAULTS = {"hidden": 256, "layers": 2, "activation": "relu", "output": None, "lr": 1e-3, "use_actions": False}


def loop_defaults(cfg) -> dict[str, Any]:
    """HERON's retraining cadence for a :class:`~robofeedback.rl.train.TrainConfig`: every rollout on-policy
    (``n_steps * n_envs`` steps), every 500 steps off-policy; 256 uniformly drawn pairs a round, as many rounds as
    the run has, and a few epochs over the labels each round (the authors' code makes one pass over each
    rollout's pairs)."""
    n_steps = cfg.algo_kwargs.get("n_steps", 2048)  # SB3's PPO default
    every = n_steps * cfg.n_envs if cfg.algo == "ppo" else 500
    per_round = 256
    return {
        "every": every,
        "labels_per_round": per_round,
        "budget": per_round * (cfg.total_steps // every + 1),
        "selection": "uniform",
        "max_epochs": 5,
    }


class HeuristicReward(RewardFunction):
    """The reward-engineering baseline: r = sum_l s_l beta^(l-1) z_l over the ranked factors (for three costs,
    r = -z_1 - beta z_2 - beta^2 z_3), read from ``info["factors"]``."""

    def __init__(self, order: Sequence[str], signs: Sequence[int], beta: float):
        if len(order) != len(signs) or not order:
            raise ValueError(f"need one sign per ranked factor, got {list(order)} and {list(signs)}")
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.order, self.beta = list(order), float(beta)
        self.weights = np.array([s * beta**level for level, s in enumerate(signs)], dtype=np.float64)

    def reward(self, batch: Transitions) -> np.ndarray:
        z = np.array([[info["factors"][k] for k in self.order] for info in batch.info], dtype=np.float64)
        return (z @ self.weights).astype(np.float32)


def factor_sum_teacher(order: Sequence[str], signs: Sequence[int], seed: int | None = None) -> Teacher:
    """The authors' RLHF baseline: an Oracle that prefers the segment with the larger sum of the signed factors."""
    return Teacher(reward={k: float(s) for k, s in zip(order, signs, strict=True)}, name="factor-sum", seed=seed)
