"""PEBBLE's bench entries: preferences from a scripted teacher at a label budget, and the preference study's
measures and report section.

``robofeedback bench --suite preference`` is the study (``configs/bench/suites/preference.yaml``): per task, seed,
arm (a set of the reward model's and loop's settings: PEBBLE as it was, each feedback-efficiency option alone,
their combination), teacher and label budget, SAC on the learned reward, and SAC on the env's own reward with the
same settings (``true_reward: true``). An entry may also measure its learned reward's label accuracy on
``fresh_pairs`` fresh segment pairs (from the final policy and random actions) labelled by the Oracle, and
``round_cost``: how much longer 1000 env steps took in the last feedback round than in the first. The report
section gives the labels each arm needs to come within 10 points of the true reward, and the study's table.
It also reads the rows of the study's results from before the suite (``docs/results/preference/results.jsonl``),
where ``method`` was the arm's name (``true reward`` the baseline's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.config import deep_merge
from robofeedback.envs import make
from robofeedback.feedback.teachers import make_teacher
from robofeedback.methods.bench import LabelledEntry, mean_spread, train_entry, trained, with_budget
from robofeedback.rewards.preference import PreferenceReward, fresh_pair_accuracy
from robofeedback.rl.train import family_of, load_train_config
from robofeedback.seeding import stream_seed


@dataclass(frozen=True, kw_only=True)
class PreferenceEntry(LabelledEntry):
    """A PEBBLE bench entry: the ``teacher`` (with ``teacher_params``), the arm's ``settings`` (laid over the
    entry's config), ``true_reward`` for the study's baseline, and the study's extra measures."""

    teacher: str = "oracle"
    teacher_params: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    true_reward: bool = False
    fresh_pairs: int = 0
    round_cost: bool = False


def heldout_accuracy(out_dir: Path, task: str, config: dict, model, seed: int, n_pairs: int = 500) -> float:
    """Oracle-label accuracy of the run's final reward model on fresh pairs from the final policy and random
    actions (segments as long as the run's)."""
    cfg = load_train_config(family_of(task), "sac", 1, config)
    env_kwargs = {**cfg.env_kwargs, **({"flatten": True} if family_of(task) == "panda" else {})}
    env = make(task, seed=stream_seed(seed, "fresh-pairs"), **env_kwargs)
    reward_model = PreferenceReward.load(out_dir / "checkpoints" / "reward_model.pt")
    length = cfg.feedback.get("segment_length", 50)
    return fresh_pair_accuracy(reward_model, env, model, length, n_pairs, seed=stream_seed(seed, "fresh-pairs"))


def round_cost(log: Path) -> dict[str, float] | None:
    """Wall seconds per 1000 env steps between the first two feedback rounds that asked for labels and between the
    last two (from the loop's ``feedback.jsonl``), and their ratio; None with fewer than three such rounds."""
    rounds = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rounds = [r for r in rounds if "wall_time_s" in r and r.get("queries")]  # rounds that asked and retrained
    if len(rounds) < 3:
        return None

    def per_1000(a: dict, b: dict) -> float:
        return 1000 * (b["wall_time_s"] - a["wall_time_s"]) / max(b["steps"] - a["steps"], 1)

    first, last = per_1000(rounds[0], rounds[1]), per_1000(rounds[-2], rounds[-1])
    return {"first_s": round(first, 2), "last_s": round(last, 2), "ratio": round(last / first, 2)}


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train on preferences from the entry's ``teacher`` (default the Oracle, with ``teacher_params``), ``budget``
    labels over ``rounds`` rounds, under the arm's ``settings``; with ``true_reward``, on the env's own reward."""
    settings = PreferenceEntry.from_dict(entry)
    if settings.true_reward:
        return train_entry(entry, folder, "env")
    config = with_budget({**entry, "config": deep_merge(entry["config"], settings.settings)})
    teacher = make_teacher(settings.teacher, seed=settings.seed, **settings.teacher_params)
    result, row = trained(entry, folder, "preference", teacher, config)
    if settings.round_cost:
        row["round_cost"] = round_cost(folder / "feedback.jsonl")
    if settings.fresh_pairs:
        row["reward_accuracy_fresh_pairs"] = heldout_accuracy(
            folder, settings.task, config, result.model, settings.seed, settings.fresh_pairs
        )
    return row


LATE_EVALS = 3


def late_success(row: dict[str, Any]) -> float | None:
    """Mean success rate over a run's last ``LATE_EVALS`` evaluations: less noisy than the final one alone."""
    values = [c["success_rate"] for c in row["curve"][-LATE_EVALS:] if c.get("success_rate") is not None]
    return float(np.mean(values)) if values else None


WITHIN = 0.10  # the headline: labels needed to come within this much success of the true reward


def labels_needed(rows: list[dict[str, Any]], true_success: float) -> int | None:
    """The smallest budget whose mean late success over seeds is within ``WITHIN`` of ``true_success`` (None when
    no budget run is)."""
    for budget in sorted({r["budget"] for r in rows}):
        if np.mean([r["late_success"] for r in rows if r["budget"] == budget]) >= true_success - WITHIN:
            return budget
    return None


def study_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with the study's ``arm``, ``teacher`` (None for the true reward), ``budget`` and ``late_success``,
    from a suite row or from a row of the study's results before the suite (whose ``method`` was the arm)."""
    if row["method"] == "preference":
        config = row["config"]
        true = config.get("true_reward", False)
        arm = "true reward" if true else config.get("arm") or "pebble"
        teacher, budget = (None, 0) if true else (config.get("teacher", "oracle"), config.get("budget"))
    else:
        arm, teacher, budget = row["method"], row["teacher"], row["budget"]
    return {**row, "arm": arm, "teacher": teacher, "budget": budget, "late_success": late_success(row)}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The study's section: the labels each arm and teacher needs to come within ``WITHIN`` of the true reward
    (where the rows hold a ``true_reward`` baseline), and a table per task, arm, teacher and budget."""
    rows = [study_row(r) for r in rows]
    headline = [
        f"Labels needed to come within {WITHIN * 100:.0f} points of SAC on the true reward (mean success over the "
        f"last {LATE_EVALS} evaluations and over seeds; '> B' where no budget up to B did):",
        "",
        "| task | method | teacher | labels needed | true reward |",
        "|---|---|---|---|---|",
    ]
    lines = [
        "",
        "Success rate on the final evaluation (the task's eval_episodes) after the same env steps, and its mean "
        f"over the last {LATE_EVALS} evaluations; mean over seeds (± std where more than one). Cost: wall seconds "
        "per 1000 env steps in the last feedback round over the first.",
        "",
        "| task | steps | method | teacher | label budget | seeds | labels used | success | "
        f"success, last {LATE_EVALS} evals | env return | label accuracy (fresh pairs) | cost, last/first round | "
        "wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    has_true = False
    for task in dict.fromkeys(r["task"] for r in rows):
        task_rows = [r for r in rows if r["task"] == task]
        true = [r for r in task_rows if r["arm"] == "true reward"]
        true_success = float(np.mean([r["late_success"] for r in true])) if true else None
        learned = list(dict.fromkeys((r["arm"], r["teacher"]) for r in task_rows if r["teacher"]))
        for arm, teacher in learned:
            runs = [r for r in task_rows if (r["arm"], r["teacher"]) == (arm, teacher)]
            if true_success is not None:
                has_true = True
                needed = labels_needed(runs, true_success)
                cell = str(needed) if needed is not None else f"> {max(r['budget'] for r in runs)}"
                headline.append(f"| {task} | {arm} | {teacher} | {cell} | {true_success:.2f} |")
        groups: dict[tuple, list] = {}
        for r in task_rows:
            groups.setdefault((r["arm"], r["teacher"], r["budget"]), []).append(r)
        # the true reward first, then each arm's and teacher's runs by budget
        order = sorted(groups, key=lambda k: (k[0] != "true reward", learned.index(k[:2]) if k[1] else -1, k[2]))
        for (arm, teacher, budget), group in ((k, groups[k]) for k in order):
            costs = [(g.get("round_cost") or {}).get("ratio") for g in group]
            cells = [
                task,
                group[0]["steps"],
                arm,
                teacher or "-",
                budget or "-",
                len(group),
                mean_spread([g.get("labels") for g in group], 0),
                mean_spread([g.get("success_rate") for g in group]),
                mean_spread([g.get("late_success") for g in group]),
                mean_spread([g.get("mean_env_return") for g in group], 1),
                mean_spread([g.get("reward_accuracy_fresh_pairs") for g in group]),
                mean_spread(costs) + ("x" if any(c is not None for c in costs) else ""),
                mean_spread([g.get("wall_time_s") for g in group], 0) + " s",
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return ["## Preference learning vs the true reward", "", *(headline if has_true else []), *lines, ""]
