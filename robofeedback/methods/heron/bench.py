"""HERON's bench entries: a factor ranking with its margins, labels from the hierarchy's decision tree, and the
paper's baselines as arms of the same study.

An entry's ``kind`` is ``heron`` (the default: the reward learned from the ranking), ``heuristic`` (the weighted
sum r = sum_l s_l beta^(l-1) z_l at ``beta``) or ``factor_sum`` (PEBBLE-style preferences labelled by the sum of
the signed factors, with HERON's pairs, cadence and network: only the labelling differs). ``beta: best`` runs the
heuristic at the best beta of the task's finished sweep (the entries of ``betas``, on their seeds), read from the
suite's ``results.jsonl``: list it after the sweep; with ``--jobs`` above 1 it may start before the sweep ends, and
then fails until ``--resume``. ``robofeedback bench --suite heron`` is the study (``configs/bench/suites/heron.yaml``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.envs import make
from robofeedback.methods.bench import EntryError, LabelledEntry, train_entry, with_budget
from robofeedback.methods.heron.model import (
    MODEL_DEFAULTS,
    HeuristicReward,
    HierarchicalJudge,
    factor_sum_teacher,
    loop_defaults,
)
from robofeedback.rl.train import family_of, load_train_config

KINDS = ("heron", "heuristic", "factor_sum")


@dataclass(frozen=True, kw_only=True)
class HeronEntry(LabelledEntry):
    """A HERON bench entry: the ranked ``factors`` (most important first) with margins ``sigma``, the arm's
    ``kind``, the heuristic's ``beta`` (a number, or ``best`` of the sweep ``betas``)."""

    factors: list[str] = field(default_factory=list)
    sigma: float | list[float] = 1.0
    kind: str = "heron"
    beta: float | str | None = None
    betas: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.factors:
            raise EntryError("a heron entry needs factors: (the ranking, most important first)")
        if self.kind not in KINDS:
            raise EntryError(f"a heron entry's kind is one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "heuristic") != (self.beta is not None):
            raise EntryError("beta: is for kind: heuristic, and that kind needs one")
        if self.beta == "best" and not self.betas:
            raise EntryError("beta: best needs betas: (the sweep it picks from)")
        if isinstance(self.beta, str) and self.beta != "best":
            raise EntryError(f"beta is a number or 'best', got {self.beta!r}")


def best_beta(settings: HeronEntry, results: Path) -> float:
    """The beta whose heuristic entry on the task scored best among the finished sweep in ``results``."""
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    scores = {
        r["beta"]: r["score"]
        for r in rows
        if r["method"] == "heron"
        and r["task"] == settings.task
        and r.get("status") == "ok"
        and r["config"].get("kind") == "heuristic"
        and r["config"].get("beta") != "best"
    }
    missing = [b for b in settings.betas if b not in scores]
    if missing:
        raise EntryError(
            f"the heuristic's sweep on {settings.task} has no finished entry for beta {missing}: list the sweep "
            "before beta: best, or run the suite again with --resume"
        )
    return max(settings.betas, key=lambda b: scores[b])


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Train the entry's arm; a ``budget`` is optional (HERON labels every round's pairs by default)."""
    settings = HeronEntry.from_dict(entry)
    config = with_budget(entry) if settings.budget is not None else entry["config"]
    if settings.kind == "heron":
        judge = HierarchicalJudge(settings.factors, sigma=settings.sigma)
        row = train_entry(entry, folder, "heron", judge, config)
        return {**row, "levels": judge.level_fractions()}
    env = make(settings.task, seed=settings.seed, render_size=32)
    signs = [env.factor_info[k].sign for k in settings.factors]
    env.close()
    if settings.kind == "factor_sum":  # HERON's loop and network, labels by the sum of the factors
        cfg = load_train_config(family_of(settings.task), settings.algo, settings.steps, config)
        config = {
            **config,
            "feedback": {**loop_defaults(cfg), "segment_length": 1, **config.get("feedback", {})},
            "preference": {**MODEL_DEFAULTS, **config.get("preference", {})},
        }
        return train_entry(
            entry, folder, "preference", factor_sum_teacher(settings.factors, signs, settings.seed), config
        )
    # the suite keeps its results.jsonl two folders above an entry's
    beta = best_beta(settings, folder.parents[1] / "results.jsonl") if settings.beta == "best" else settings.beta
    row = train_entry(entry, folder, HeuristicReward(settings.factors, signs, beta), None, config)
    score = row["success_rate"] if row["success_rate"] is not None else row["mean_env_return"]
    return {**row, "beta": beta, "score": score}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """HERON's comparisons in the suite's report: the share decided at each level of the factor ranking, per entry
    and as the mean over seeds per task; and the beta each heuristic arm ran at."""
    learned = [r for r in rows if r.get("levels")]
    lines = ["HERON's comparisons, share decided at each level of the factor ranking:", ""]
    lines += [
        f"- {r['task']} seed {r['seed']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["levels"].items()) for r in learned
    ]
    lines.append("")
    tasks = list(dict.fromkeys(r["task"] for r in learned))
    if any(sum(r["task"] == t for r in learned) > 1 for t in tasks):
        lines += ["Mean over seeds:", ""]
        for task in tasks:
            runs = [r for r in learned if r["task"] == task]
            shares = ", ".join(f"{n}: {np.mean([r['levels'][n] for r in runs]):.2f}" for n in runs[0]["levels"])
            config = runs[0]["config"]
            lines.append(f"- {task} ({', '.join(config['factors'])}; sigma {config['sigma']}): {shares}")
        lines.append("")
    heuristic = [r for r in rows if r.get("beta") is not None]
    if heuristic:
        lines += ["The heuristic is r = sum_l s_l beta^(l-1) z_l over the ranked factors; it ran at:", ""]
        lines += [f"- {r['task']} seed {r['seed']}: beta {r['beta']:g} (score {r['score']:.2f})" for r in heuristic]
        lines.append("")
    return lines
