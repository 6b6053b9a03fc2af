"""The contracts the layers share, declared once: reward functions, learned rewards, feedback sources, and the
proposer / ranker / updater roles of the loops that write reward code (ICPL, the bi-level video loop).

A reward function scores a batch of transitions at once and returns a float32 array; it says whether it needs
rendered frames (``needs_frames``), so that wrappers render only when something will look at the pixels. Reward
functions are picklable and never touch the env. A costly one may ask the wrappers to score only some steps: every
``reward_every``-th step of an episode (holding the last score between), or only an episode's last step
(``reward_at_episode_end``; 0 elsewhere); frames are then rendered only on the steps that are scored.

A learned reward (:class:`LearnedReward`) is a reward function that the feedback loop fits on labels, asks which
queries to put next, relabels replay buffers with, and saves with the run's checkpoints. A feedback source
(:class:`FeedbackSource`) answers the loop's queries in the feedback store.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from robofeedback.data.store import FeedbackStore, Query, StoredSegment
    from robofeedback.data.trajectory import Segment

Obs = np.ndarray | dict[str, np.ndarray]


@dataclass
class Transitions:
    """A batch of N transitions: ``obs`` / ``next_obs`` stacked along the first axis (arrays, or dicts of arrays
    for dict observation spaces), ``action`` ``(N, ...)``, ``info`` a list of N info dicts, and ``frames``
    ``(N, H, W, 3)`` uint8 renders of ``next_obs`` when the reward function asked for them.

    >>> batch = Transitions(np.zeros((2, 3)), np.zeros((2, 1)), np.ones((2, 3)), [{}, {"success": True}])
    >>> len(batch), batch.subset(np.array([1])).info
    (2, [{'success': True}])
    """

    obs: Obs
    action: np.ndarray
    next_obs: Obs
    info: list[dict]
    frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, rows: np.ndarray) -> Transitions:
        """The transitions at the indices ``rows``, as a batch."""
        pick = (lambda o: {k: v[rows] for k, v in o.items()}) if isinstance(self.obs, dict) else (lambda o: o[rows])
        frames = None if self.frames is None else self.frames[rows]
        info = [self.info[i] for i in rows]
        return Transitions(pick(self.obs), self.action[rows], pick(self.next_obs), info, frames)

    def row(self, i: int) -> tuple[Any, np.ndarray, Any, dict]:
        """The i-th transition as ``(obs, action, next_obs, info)``."""
        pick = (lambda o: {k: v[i] for k, v in o.items()}) if isinstance(self.obs, dict) else (lambda o: o[i])
        return pick(self.obs), self.action[i], pick(self.next_obs), self.info[i]


class RewardFunction:
    """Base class of reward functions: subclasses implement ``reward(batch) -> np.ndarray[float32]``.

    >>> class Alive(RewardFunction):
    ...     def reward(self, batch):
    ...         return np.ones(len(batch))
    >>> Alive()(Transitions(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 2)), [{}] * 3))
    array([1., 1., 1.], dtype=float32)
    """

    needs_frames: bool = False
    reward_every: int = 1
    reward_at_episode_end: bool = False

    def reward(self, batch: Transitions) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement reward()")

    def __call__(self, batch: Transitions) -> np.ndarray:
        out = np.asarray(self.reward(batch), dtype=np.float32).reshape(-1)
        if len(out) != len(batch):
            raise ValueError(f"{type(self).__name__}.reward returned {len(out)} rewards for {len(batch)} transitions")
        return out


class LearnedReward(RewardFunction, ABC):
    """A reward function learned from labelled pairs of segments, as the feedback loop (PEBBLE's) drives it.

    The loop hands it ``data``: pairs of segments with their targets, a
    :class:`~robofeedback.rewards.preference.PreferenceData`. It tells the model the env steps so far
    (``steps``), the policy's recent transitions when ``policy_steps`` > 0, and unlabelled pairs when
    ``wants_unlabelled``; it relabels replay buffers with :meth:`rewards_of` and saves the model with the run's
    checkpoints, reloading it with :meth:`load` when the run resumes.
    """

    steps: int = 0  # env steps so far (the feedback loop keeps it up to date)
    policy_steps: int = 0  # recent policy transitions the loop hands to set_policy_data (0: none)
    wants_unlabelled: bool = False  # whether fit uses unlabelled pairs (pseudo-labels)

    @classmethod
    @abstractmethod
    def for_env(cls, env: Any, **settings: Any) -> LearnedReward:
        """A model sized for ``env``'s observation and action spaces, with ``settings``."""

    @abstractmethod
    def fit(self, data: Any, max_epochs: int | None = None, unlabelled: Any | None = None) -> dict[str, float]:
        """Learn from every label so far; returns figures of the training (loss, accuracy, ...)."""

    @abstractmethod
    def accuracy(self, data: Any) -> float:
        """Fraction of the strict labels in ``data`` the model predicts right; NaN when there are none."""

    @abstractmethod
    def select(self, candidates: Any, n: int, strategy: str = "disagreement") -> np.ndarray:
        """Indices of the ``n`` candidate pairs to ask about next."""

    @abstractmethod
    def rewards_of(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The reward of flat observations and actions, for relabelling a replay buffer."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the model (weights, settings, training state) to ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> LearnedReward:
        """The model :meth:`save` wrote."""

    @abstractmethod
    def save_pretrained(self, folder: str | Path, card: dict[str, Any] | None = None) -> Path:
        """Write the model as a folder other tools open (settings as JSON, weights as safetensors, a model card
        from ``card``: the env, labels and their sources, held-out accuracy, licence)."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, folder: str | Path) -> LearnedReward:
        """The model :meth:`save_pretrained` wrote."""

    def set_policy_data(self, obs: np.ndarray, actions: np.ndarray) -> None:
        """Recent transitions of the current policy, for models whose loss uses them (``policy_steps`` > 0)."""
        raise NotImplementedError(f"{type(self).__name__} does not learn from the policy's own data")

    @classmethod
    def settings(cls) -> set[str]:
        """The settings a config's ``preference:`` section may give the model: its constructors' keyword
        parameters, along the class hierarchy (a subclass passes the rest on to its base)."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" in klass.__dict__ and klass is not object:
                parameters = inspect.signature(klass.__dict__["__init__"]).parameters.values()
                names |= {p.name for p in parameters if p.kind in kinds and p.name != "self"}
        return names


class FeedbackSource:
    """Anything that answers queries in the feedback store: ``answer(store, queries, segments)`` labels each query
    (or leaves it pending); ``source`` is the provenance its labels carry (e.g. ``script:oracle``).

    Scripted teachers and judges answer at once (``immediate``); the human queue leaves the queries pending for
    people in the annotation app, and :meth:`wait` says how long to wait for them. A source that compares pieces
    of a set length (HERON's single transitions) says so in ``segment_length``.
    """

    source: str = ""
    immediate: bool = True
    needs_frames: bool = False
    segment_length: int | None = None

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        """Label ``queries`` (their segments are in ``segments`` by id) with ``store.answer_query``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement answer()")

    def attach(self, env) -> None:
        """Learn what it needs from the training env (a judge takes its camera); most sources need nothing."""

    def wait(self, store: FeedbackStore, query_ids: Sequence[str]) -> int:
        """Block until this source's answers are in, as it is configured to; returns how many queries are closed.
        Sources that answer at once have nothing to wait for."""
        return sum(store.get_query(q).status != "pending" for q in query_ids)

    def level_fractions(self) -> dict[str, float]:
        """For sources that decide at levels of a hierarchy (HERON), the share of labels decided at each; else
        empty."""
        return {}


class RewardProposer(Protocol):
    """Writes candidate reward functions (ICPL's LLM, or a scripted stand-in) and learns from the ranking."""

    name: str  # the proposer in the loop's summary (``llm:<model>``, ``offline:factor-weights``)

    def propose(self, n: int, seed: int) -> list[tuple[str, str]]:
        """``n`` candidates as (code, response): the code is "" where an answer held none."""

    def learn(self, good: Any, bad: Any, note: str, previous_good: Any | None) -> None:
        """Take in which candidate was best and which worst, with the ranker's note."""


class CandidateRanker(Protocol):
    """Ranks trained candidates by their videos (a person, or a synthetic judge): ICPL's human in the loop."""

    name: str  # the ranker in the loop's summary (``script:icpl-ranker``, ``human:terminal``)

    def rank(self, candidates: Sequence[Any]) -> tuple[int, int, str]:
        """The indices of the best and the worst candidate, and a note."""


class RewardUpdater(Protocol):
    """The lower level of the bi-level video loop: turns the judge's feedback into the next reward."""

    name: str  # the lower level in the loop's summary (``llm:<model>``, ``offline:feedback-weights``)

    def initial(self, seed: int) -> tuple[str, str, list | None]:
        """The first reward: (code, response or note, the prompt's messages or None when no model was asked)."""

    def observe(self, record: dict[str, Any]) -> None:
        """Take in one iteration's record (the judge's similarity and feedback, the policy's figures)."""

    def propose(self, record: dict[str, Any], seed: int) -> tuple[str, str, list | None]:
        """The next reward after ``record``: (code, response or note, the prompt's messages or None)."""
