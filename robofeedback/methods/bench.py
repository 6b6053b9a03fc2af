"""What the methods' bench sections share: training one suite entry with a reward and reading its result row.

A suite entry is a dict from the suite's YAML, expanded to one seed (``seed``), with the task (``task``), the env
steps (``steps``), the algorithm (``algo``, default SAC) and the train config (``config``, the suite's ``train:``
settings under the entry's own).
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from robofeedback.config import assets_dir, deep_merge
from robofeedback.data.rollout import collect
from robofeedback.data.video import read_video, resample
from robofeedback.envs import make, policy_env_kwargs
from robofeedback.envs.tasks import task_prompts
from robofeedback.feedback.vlm import ClipVideoJudge
from robofeedback.protocols import RewardFunction
from robofeedback.rewards.base import EnvReward
from robofeedback.rewards.code import CodeReward
from robofeedback.rewards.metrics import coverage, reward_metrics
from robofeedback.rl.train import ALGOS, TrainResult, train
from robofeedback.seeding import stream_seed

# beside every result of reward code that weights the env's factors, or that a hand-written replay served
FACTOR_NOTE = (
    "The offline proposer and lower level write weighted sums of the env's named reward factors, which on panda and "
    "MetaWorld are components of the env's own reward (on PyBullet locomotion they sum to it exactly): they start "
    "near the true reward. A hand-written replay is not a model: its answers are served whatever the prompt says."
)


def mean_spread(values: list, digits: int = 2) -> str:
    """``mean ± std`` of the values that are not None (just the value when they are all the same, ``-`` when
    there are none).

    >>> mean_spread([0.5, 0.7, None]), mean_spread([0.5, 0.5]), mean_spread([None])
    ('0.60 ± 0.10', '0.50', '-')
    """
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    spread = f" ± {np.std(values):.{digits}f}" if len(set(values)) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}"


class EntryError(ValueError):
    """A suite entry that cannot be run as written."""


def expert_video(task: str) -> Path:
    """The expert video shipped for ``task`` (``assets/videos/<task>-expert.mp4``, made by
    ``scripts/make_expert_video.py``)."""
    return assets_dir() / "videos" / f"{task.replace(':', '-')}-expert.mp4"


E = TypeVar("E", bound="Entry")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What the suite gives every entry of a method's bench section; a method's entry subclasses it with its own
    settings (checked in its ``__post_init__``). ``YAML_KEYS`` maps a YAML key to its field where the two differ."""

    method: str
    task: str
    seed: int
    name: str | None = None
    steps: int = 0
    algo: str = "sac"
    config: dict[str, Any] = field(default_factory=dict)

    YAML_KEYS: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls: type[E], entry: dict[str, Any]) -> E:
        """The entry's settings; a key the class does not know, or a missing one that has no default, is an
        :class:`EntryError` naming the key(s) and the allowed ones."""
        yaml_key = {name: key for key, name in cls.YAML_KEYS.items()}
        keys = {yaml_key.get(f.name, f.name): f for f in fields(cls)}
        allowed = ", ".join(keys)
        method = entry.get("method", "?")
        unknown = sorted((key for key in entry if key not in keys), key=str)
        if unknown:
            named = ", ".join(map(repr, unknown))
            plural = "s" if len(unknown) > 1 else ""
            raise EntryError(f"{method} entry: unknown key{plural} {named}; allowed keys: {allowed}")
        for key, f in keys.items():
            if f.default is MISSING and f.default_factory is MISSING and key not in entry:
                raise EntryError(f"{method} entry: {key!r} is required; allowed keys: {allowed}")
        return cls(**{cls.YAML_KEYS.get(k, k): v for k, v in entry.items()})


@dataclass(frozen=True, kw_only=True)
class LabelledEntry(Entry):
    """An entry of a method that learns from labels: ``arm`` names one arm of a study (it sets the entry apart in
    results and the report); ``budget`` labels are spread over ``rounds`` feedback rounds."""

    arm: str | None = None
    budget: int | None = None
    rounds: int = 10


class EntryProgress(BaseCallback):
    """Writes the env steps done and to do to the entry's ``progress.json``, for the suite's display."""

    def __init__(self, folder: Path, total: int):
        super().__init__()
        self.path, self.total = folder / "progress.json", total

    def _on_step(self) -> bool:
        if self.num_timesteps % 200 < self.training_env.num_envs:
            self.path.write_text(json.dumps({"done": int(self.num_timesteps), "total": int(self.total)}))
        return True


def curve(folder: Path) -> list[dict[str, Any]]:
    """The evaluations of a training run in ``folder``: steps, labels, success rate and env return each."""
    keys = ("steps", "labels", "success_rate", "mean_env_return")
    rows = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines() if line.strip()]
    return [{k: r[k] for k in keys if k in r} for r in rows]


def train_entry(entry: dict[str, Any], folder: Path, reward, feedback=None, config: dict | None = None) -> dict:
    """Train the entry's policy on ``reward`` (learned from ``feedback`` when it is a learned reward) into
    ``folder``, each method as the suite names it (no family defaults for the method, under the entry's config);
    returns the row: steps, final success rate and env return, the curve, and for learned rewards the labels
    used and the reward model's held-out accuracy."""
    return trained(entry, folder, reward, feedback, config)[1]


def trained(
    entry: dict[str, Any], folder: Path, reward, feedback=None, config: dict | None = None
) -> tuple[TrainResult, dict]:
    """:func:`train_entry`'s training result (the policy, the reward) and its row."""
    result = train(
        entry["task"],
        reward=reward,
        feedback=feedback,
        algo=entry.get("algo", "sac"),
        total_steps=entry["steps"],
        seed=entry["seed"],
        out_dir=folder,
        config=config if config is not None else entry["config"],
        resume=False,
        progress=False,
        callbacks=[EntryProgress(folder, entry["steps"])],
        method_defaults=False,
    )
    row = {
        "steps": result.steps,
        "success_rate": result.final_eval.get("success_rate"),
        "mean_env_return": result.final_eval["mean_env_return"],
        "curve": curve(folder),
    }
    if result.feedback:
        row["labels"] = result.feedback["labels"]
        row["reward_accuracy_heldout"] = result.feedback.get("heldout_accuracy")
    if result.reward is not None and not isinstance(result.reward, EnvReward):
        row["reward_metrics"] = measure_reward(entry, result.reward, result.model)
    return result, row


COVERAGE_EPISODES = 16


def measure_reward(entry: dict[str, Any], reward: RewardFunction, policy: Any = None) -> dict[str, Any]:
    """:func:`~robofeedback.rewards.metrics.reward_metrics` of ``reward`` on the entry's task: coverage episodes
    of ``policy`` and of random actions (the entry's ``coverage`` random stream), segments as long as the entry's
    feedback segments."""
    env_kwargs = policy_env_kwargs(entry["task"], entry["config"].get("env_kwargs", {}))
    seed = stream_seed(entry["seed"], "coverage")
    env = make(entry["task"], seed=seed, **env_kwargs)
    try:
        episodes = coverage(env, policy, COVERAGE_EPISODES, seed, frames=reward.needs_frames)
    finally:
        env.close()
    length = int(entry["config"].get("feedback", {}).get("segment_length", 25))
    return {**reward_metrics(reward, episodes, length, seed=seed), "coverage_episodes": COVERAGE_EPISODES}


def expert_similarity(entry: dict[str, Any], policies: list[Any], fps: float) -> list[float]:
    """Each policy rendered on one episode (the entry's ``judged`` random stream, the episode the bi-level loop
    renders) and scored against the task's expert video by the offline video judge at ``fps``."""
    judge = ClipVideoJudge()
    expert = read_video(expert_video(entry["task"]), fps=fps)
    env = make(
        entry["task"], seed=entry["seed"], **policy_env_kwargs(entry["task"], entry["config"].get("env_kwargs", {}))
    )
    similarity = []
    for policy in policies:
        (episode,) = collect(env, policy, n_episodes=1, render=True, seed=stream_seed(entry["seed"], "judged"))
        learner = resample(episode.frames, env.metadata["render_fps"], fps)
        similarity.append(judge.compare_videos(learner, expert, fps).similarity)
    env.close()
    return similarity


def measure_code(entry: dict[str, Any], code: str, checkpoint: Path) -> dict[str, Any]:
    """:func:`measure_reward` of reward ``code`` (run in its jail), the coverage policy the model saved at
    ``checkpoint`` (a ``model.zip``) with the entry's algorithm."""
    reward = CodeReward(code)
    try:
        return measure_reward(entry, reward, ALGOS[entry.get("algo", "sac")].load(checkpoint, device="cpu"))
    finally:
        reward.close()


def with_budget(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's config with its label ``budget`` spread over ``rounds`` (default 10) feedback rounds."""
    budget = int(entry["budget"])
    per_round = math.ceil(budget / int(entry.get("rounds", 10)))
    return deep_merge(entry["config"], {"feedback": {"budget": budget, "labels_per_round": per_round}})


def prompts(entry: dict[str, Any]) -> tuple[str, str]:
    """The entry's CLIP goal and baseline prompts, by default the task's known ones."""
    known = task_prompts(entry["task"])
    goal, baseline = entry.get("goal") or known.get("goal"), entry.get("baseline") or known.get("baseline")
    if not goal or not baseline:
        raise EntryError(f"{entry['method']} needs goal: and baseline: prompts; none are known for {entry['task']}")
    return goal, baseline


def task_text(entry: dict[str, Any]) -> str:
    """The task in words for the LLM or the judge: the entry's ``text:``, by default the task's known text."""
    text = entry.get("text") or task_prompts(entry["task"]).get("task")
    if not text:
        raise EntryError(f"{entry['method']} needs text: (the task in words); none is known for {entry['task']}")
    return text
