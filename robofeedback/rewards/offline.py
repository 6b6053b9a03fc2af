"""Learning a reward model offline, from a dataset's labels, with no env running; and using a saved one as it is.

A dataset that :func:`robofeedback.data.dataset.export_dataset` wrote holds the segments (observations and
actions) and the preference labels on them: enough for the Bradley-Terry fit that the feedback loop runs online.
:func:`fit_from_dataset` holds a share of the labels out, fits on the rest and reports the held-out accuracy.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback import registry
from robofeedback.data.dataset import FeedbackDataset, source_matches
from robofeedback.data.store import StoredSegment
from robofeedback.data.trajectory import flat_obs
from robofeedback.protocols import LearnedReward, RewardFunction, Transitions
from robofeedback.rewards.preference import PRETRAINED_FORMAT, PreferenceData, PreferenceReward, goal_slices


@dataclass
class LabelledPairs:
    """A dataset's standing preference labels (skips left out) on its segments, oldest first."""

    pairs: list[tuple[StoredSegment, StoredSegment]]
    values: list[str]
    levels: list[int | None]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.values)

    def data(self, index: Sequence[int] | np.ndarray) -> PreferenceData:
        index = list(index)
        return PreferenceData.from_pairs(
            [self.pairs[i] for i in index], [self.values[i] for i in index], [self.levels[i] for i in index]
        )


def labelled_pairs(dataset: FeedbackDataset, sources: Sequence[str] | None = None) -> LabelledPairs:
    """The preference labels of ``dataset`` (by sources matching any of ``sources``) with their segments."""
    segments = dataset.segments()
    rows = [
        r
        for r in dataset.rows["labels"]
        if r["kind"] == "preference" and r["standing"] and r["value"] != "skip" and source_matches(r["source"], sources)
    ]
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    return LabelledPairs(
        [(segments[r["segment_ids"][0]], segments[r["segment_ids"][1]]) for r in rows],
        [r["value"] for r in rows],
        [json.loads(r["payload"]).get("level") for r in rows],
        [r["source"] for r in rows],
    )


def goal_difference_of(segment: StoredSegment) -> list[int] | None:
    """[start, end) of ``achieved_goal`` and ``desired_goal`` in a segment's flat observation (its dict keys side by
    side in sorted order, as :func:`~robofeedback.data.trajectory.flat_obs` and Gymnasium put them); None when its
    observations are not such a dict."""
    if not isinstance(segment.obs, dict) or not {"achieved_goal", "desired_goal"} <= set(segment.obs):
        return None
    offsets, start = {}, 0
    for key in sorted(segment.obs):
        width = int(np.prod(np.shape(segment.obs[key])[1:], dtype=np.int64))
        offsets[key] = (start, start + width)
        start += width
    return [*offsets["achieved_goal"], *offsets["desired_goal"]]


def model_for(pairs: LabelledPairs, settings: dict[str, Any], env: Any = None) -> PreferenceReward:
    """A preference reward sized for the dataset's segments with ``settings`` (a config's ``preference:`` section).
    ``goal_features`` places the goals from dict observations' keys, or from ``env``'s spaces when the segments'
    observations are flat."""
    if not pairs.pairs:
        raise ValueError("the dataset has no preference labels to learn from (skips are left out)")
    settings = dict(settings)
    first = pairs.pairs[0][0]
    if settings.pop("goal_features", False):
        difference = goal_difference_of(first) or (goal_slices(env) if env is not None else None)
        if difference is None:
            raise ValueError(
                "goal_features needs the goals' places: the segments' observations are flat and no env was given; "
                "give the env, or the settings of a saved model (with its goal_difference)"
            )
        settings["goal_difference"] = difference
    obs_dim = flat_obs(first.obs).shape[-1]
    act_dim = int(np.prod(np.shape(first.actions)[1:], dtype=np.int64))
    return PreferenceReward(int(obs_dim), act_dim, **settings)


def fit_from_dataset(
    model: PreferenceReward, pairs: LabelledPairs, heldout: float = 0.2, seed: int = 0, max_epochs: int | None = None
) -> dict[str, Any]:
    """Fit ``model`` on the labels of ``pairs`` but a random ``heldout`` share (by ``seed``), which it is scored on
    (the fraction of strict labels it orders right); returns the fit's figures with ``heldout_accuracy`` (None with
    ``heldout`` 0), the label counts and the sources."""
    if not 0 <= heldout < 1:
        raise ValueError(f"heldout is a share of the labels in [0, 1), got {heldout}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_held = int(round(heldout * len(pairs)))
    held, kept = order[:n_held], order[n_held:]
    if len(kept) == 0:
        raise ValueError(f"no labels left to fit on: {len(pairs)} labels, {n_held} held out")
    fit = model.fit(pairs.data(kept), max_epochs)
    accuracy = model.accuracy(pairs.data(held)) if n_held else float("nan")
    return {
        **fit,
        "heldout_accuracy": None if np.isnan(accuracy) else round(float(accuracy), 4),
        "heldout_labels": n_held,
        "labels": int(len(kept)),
        "sources": dict(Counter(pairs.sources[i] for i in kept)),
    }


class FrozenReward(RewardFunction):
    """A learned reward used as it is: scores transitions with the model and is not trained further (a policy
    trained on a reward model fitted offline or shared by another lab)."""

    def __init__(self, model: LearnedReward):
        self.model = model

    def reward(self, batch: Transitions) -> np.ndarray:
        return self.model.reward(batch)


def load_pretrained(folder: str | Path) -> FrozenReward:
    """The reward model a ``save_pretrained`` folder holds (of any registered method's model class), frozen and
    without RUNE's exploration bonus, which is for learning; a clear error for any other folder."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} is not a saved reward model: it has no config.json")
    saved = json.loads(config.read_text())
    if saved.get("format") != PRETRAINED_FORMAT:
        raise ValueError(f"{folder} is not a robofeedback reward model (format {saved.get('format')!r})")
    classes = {PreferenceReward.__name__: PreferenceReward}
    classes.update({m.model.__name__: m.model for m in registry.methods().values() if m.model is not None})
    if saved.get("class") not in classes:
        raise ValueError(f"{folder} holds a {saved.get('class')}, which no registered method learns")
    model = classes[saved["class"]].from_pretrained(folder)
    model.config["explore_bonus"] = 0.0
    return FrozenReward(model)
