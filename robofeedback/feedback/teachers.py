"""Scripted teachers: the six simulated labellers of B-Pref (Lee et al. 2021), configurable and combinable.

A teacher compares two segments by their returns under the env's reward (or any
named factor, or a weighted sum of factors) the way B-Pref's ``get_label`` does, in this order:

1. Skip: if neither segment's return exceeds ``skip_threshold``, no label ("skip").
2. Myopic: returns are discounted towards the start, R = sum_t gamma^(H-1-t) r_t.
3. Stochastic: P(b better) = sigmoid(beta * (R_b - R_a)), sampled; ``beta=inf`` is the rational
   (Oracle) choice, R_b > R_a.
4. Mistake: the label is flipped with probability ``mistake``.
5. Equal: if |R_a - R_b| (undiscounted) < ``equal_threshold``, the label is "equal".

B-Pref sets the skip and equal thresholds to eps * (mean episode return * H / T),
H the segment length and T the episode length; :func:`bpref_threshold` computes it.
Segments may differ in length (an episode that ended early is a shorter segment):
the returns are then sums over what each segment holds, as the env's own
episode returns are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robofeedback.data.store import FeedbackStore, Query, StoredSegment, check_source
from robofeedback.data.trajectory import Segment
from robofeedback.protocols import FeedbackSource


def bpref_threshold(eps: float, mean_episode_return: float, segment_length: int, episode_length: int) -> float:
    """B-Pref's skip/equal threshold: eps * mean episode return * H / T."""
    return eps * mean_episode_return * segment_length / episode_length


class Teacher(FeedbackSource):
    """A simulated labeller; the defaults are the Oracle, and each parameter switches on one B-Pref irrationality.

    >>> from robofeedback.data.trajectory import Trajectory
    >>> traj = Trajectory(np.zeros((5, 2)), np.zeros((4, 1)), np.array([0, 0, 1, 1.0]), [{}] * 4, np.zeros((5, 3)))
    >>> early, late = traj.segment(0, 2), traj.segment(2, 4)  # returns 0 and 2
    >>> Teacher().label(early, late), Teacher(equal_threshold=5.0).label(early, late)
    ('b', 'equal')
    >>> noisy = Teacher(beta=1.0, seed=0)  # P(late better) = sigmoid(2)
    >>> noisy.source, noisy.label_many([(early, late)] * 8)
    ('script:teacher-beta1', ['b', 'b', 'b', 'b', 'b', 'a', 'b', 'b'])
    """

    def __init__(
        self,
        beta: float = math.inf,
        gamma: float = 1.0,
        mistake: float = 0.0,
        skip_threshold: float | None = None,
        equal_threshold: float | None = None,
        reward: str | dict[str, float] = "env_reward",
        sign: int = 1,
        name: str | None = None,
        seed: int | None = None,
    ):
        if not beta > 0:
            raise ValueError(f"beta must be > 0 (math.inf for a rational teacher), got {beta}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if not 0 <= mistake <= 1:
            raise ValueError(f"mistake must be a probability in [0, 1], got {mistake}")
        if equal_threshold is not None and equal_threshold < 0:
            raise ValueError(f"equal_threshold must be >= 0, got {equal_threshold}")
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign}")
        if isinstance(reward, dict) and (
            not reward or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in reward.values())
        ):
            raise ValueError(f"a weighted sum of factors needs {{factor: finite weight}}, got {reward!r}")
        self.beta, self.gamma, self.mistake = beta, gamma, mistake
        self.skip_threshold, self.equal_threshold = skip_threshold, equal_threshold
        self.reward, self.sign = reward, sign
        self.rng = np.random.default_rng(seed)
        self.source = check_source(f"script:{name or self._default_name()}")

    def _default_name(self) -> str:
        parts = []
        if self.beta != math.inf:
            parts.append(f"beta{self.beta:g}")
        if self.gamma != 1.0:
            parts.append(f"gamma{self.gamma:g}")
        if self.mistake:
            parts.append(f"mistake{self.mistake:g}")
        if self.skip_threshold is not None:
            parts.append(f"skip{self.skip_threshold:g}")
        if self.equal_threshold is not None:
            parts.append(f"equal{self.equal_threshold:g}")
        if isinstance(self.reward, dict):
            parts.append(("-" if self.sign < 0 else "") + "sum-of-" + "-".join(self.reward))
        elif self.reward != "env_reward":
            parts.append(("-" if self.sign < 0 else "") + self.reward)
        return "-".join(["teacher", *parts]) if parts else "oracle"

    def rewards(self, segment) -> np.ndarray:
        """Per-step rewards the teacher judges by: the env's reward, a named factor, or a weighted sum of factors
        (times ``sign``)."""
        if self.reward == "env_reward":
            return self.sign * np.asarray(segment.env_rewards, dtype=np.float64)
        weights = self.reward if isinstance(self.reward, dict) else {self.reward: 1.0}
        factors = segment.factors
        missing = [name for name in weights if name not in factors]
        if missing:
            raise KeyError(f"teacher judges by factors {missing}, but the segment has {sorted(factors)}")
        values = sum(w * np.asarray(factors[name], dtype=np.float64) for name, w in weights.items())
        return self.sign * values

    def label(self, a, b) -> str:
        """``"a"``, ``"b"``, ``"equal"`` or ``"skip"`` for segments ``a`` and ``b`` (anything with ``env_rewards``
        and ``factors``)."""
        return self.label_many([(a, b)])[0]

    def label_many(self, pairs: Sequence[tuple]) -> list[str]:
        labels = []
        for a, b in pairs:
            ra, rb = self.rewards(a), self.rewards(b)
            sum_a, sum_b = ra.sum(), rb.sum()
            if self.skip_threshold is not None and max(sum_a, sum_b) <= self.skip_threshold:
                labels.append("skip")
                continue
            ret_a, ret_b = self._myopic(ra), self._myopic(rb)
            if self.beta == math.inf:
                b_better = ret_b > ret_a
            else:
                p_b = 1.0 / (1.0 + math.exp(-self.beta * (ret_b - ret_a)))
                b_better = self.rng.random() < p_b
            if self.mistake and self.rng.random() < self.mistake:
                b_better = not b_better
            if self.equal_threshold is not None and abs(sum_a - sum_b) < self.equal_threshold:
                labels.append("equal")
            else:
                labels.append("b" if b_better else "a")
        return labels

    def _myopic(self, rewards: np.ndarray) -> float:
        return float(self.gamma ** np.arange(len(rewards) - 1, -1, -1) @ rewards)

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        values = self.label_many([(segments[q.segment_ids[0]], segments[q.segment_ids[1]]) for q in queries])
        for query, value in zip(queries, values, strict=True):
            store.answer_query(query.id, self.source, value=value)

    def __repr__(self) -> str:
        return f"Teacher({self.source})"


def oracle(**kw) -> Teacher:
    """Always prefers the segment with the higher return."""
    return Teacher(name=kw.pop("name", "oracle"), **kw)


def stochastic(beta: float = 1.0, **kw) -> Teacher:
    """Bradley-Terry noisy teacher: P(b) = sigmoid(beta (R_b - R_a))."""
    return Teacher(beta=beta, name=kw.pop("name", f"stochastic-{beta:g}"), **kw)


def mistake(eps: float = 0.1, **kw) -> Teacher:
    """The Oracle, with each label flipped with probability ``eps``."""
    return Teacher(mistake=eps, name=kw.pop("name", f"mistake-{eps:g}"), **kw)


def skip(threshold: float, **kw) -> Teacher:
    """Skips pairs where neither return exceeds ``threshold``."""
    return Teacher(skip_threshold=threshold, name=kw.pop("name", f"skip-{threshold:g}"), **kw)


def equal(threshold: float, **kw) -> Teacher:
    """Answers "equal" when the returns differ by less than ``threshold``."""
    return Teacher(equal_threshold=threshold, name=kw.pop("name", f"equal-{threshold:g}"), **kw)


def myopic(gamma: float = 0.9, **kw) -> Teacher:
    """Weighs the end of a segment more: R = sum gamma^(H-1-t) r_t."""
    return Teacher(gamma=gamma, name=kw.pop("name", f"myopic-{gamma:g}"), **kw)


TEACHERS = {
    "oracle": oracle,
    "stochastic": stochastic,
    "mistake": mistake,
    "skip": skip,
    "equal": equal,
    "myopic": myopic,
}


def make_teacher(name: str, **params) -> Teacher:
    """A teacher by B-Pref name (``oracle``, ``stochastic``, ``mistake``, ``skip``, ``equal``, ``myopic``).

    >>> from robofeedback.data.trajectory import Trajectory
    >>> traj = Trajectory(np.zeros((5, 2)), np.zeros((4, 1)), np.array([0, 0, 1, 1.0]), [{}] * 4, np.zeros((5, 3)))
    >>> oracle = make_teacher("oracle")
    >>> oracle.source, oracle.label(traj.segment(0, 2), traj.segment(2, 4))
    ('script:oracle', 'b')
    >>> make_teacher("mistake", eps=0.2, seed=0)
    Teacher(script:mistake-0.2)
    """
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    return TEACHERS[name](**params)
