"""HERON's bench section: the study's arms as suite entries, the heuristic at the best beta of the sweep, and the
section on where HERON's comparisons were decided."""

import pytest

from robofeedback.bench.suite import expand, report, run_suite, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.heron.bench import HeronEntry

RANKING = {"factors": ["ee_to_target", "progress", "ctrl_cost"], "sigma": [0.5, 0.5, 0.5]}
CONFIG = {
    "eval_every": 300,
    "eval_episodes": 2,
    "video_episodes": 0,
    "sac": {"learning_starts": 100, "batch_size": 32},
    "preference": {"hidden": 16, "ensemble": 1},
    "feedback": {"every": 100, "first_round": 100, "labels_per_round": 32},
    "env_kwargs": {"terminate_on_success": False, "render_size": 32},
}


def test_the_study_suite_sweeps_beta_on_the_first_seed_and_runs_the_best_on_the_others():
    entries = expand(load_yaml(suite_path("heron")))
    heuristic = [(e["task"], e["beta"], e["seed"]) for e in entries if e.get("kind") == "heuristic"]
    assert ("panda:PandaReachDense-v3", 0.3, 0) in heuristic and ("panda:PandaReachDense-v3", "best", 2) in heuristic
    assert len(entries) == 3 * (3 * 3 + 5 + 2) + 3  # and the authors' Ant ranking on 3 seeds
    assert {e["beta"] for e in entries if e.get("kind") == "heuristic" and e["seed"] == 0} == {0.1, 0.3, 0.5, 0.7, 1.0}
    authors = [e for e in entries if e.get("arm") == "the authors' ranking"]
    assert authors[0]["factors"] == ["alive", "joints_at_limit", "progress", "feet_collision"]
    for entry in (e for e in entries if e["method"] == "heron"):
        HeronEntry.from_dict(entry)
    with pytest.raises(EntryError, match="'signs'.*factors"):
        HeronEntry.from_dict({**entries[3], "signs": [1, 1, 1]})
    with pytest.raises(EntryError, match="kind"):
        HeronEntry.from_dict({**entries[3], "kind": "weighted"})


def test_heron_bench_sweeps_beta_on_the_first_seed_and_then_runs_the_best(tmp_path):
    base = {"method": "heron", "task": "panda:PandaReachDense-v3", "algo": "sac", "steps": 300, **RANKING}
    suite = {
        "name": "tiny heron",
        "seeds": [0, 1],
        "train": CONFIG,
        "entries": [
            {**base},
            {**base, "arm": "factor-sum preferences", "kind": "factor_sum", "seeds": [0]},
            {**base, "arm": "heuristic beta 0.3", "kind": "heuristic", "beta": 0.3, "seeds": [0]},
            {**base, "arm": "heuristic beta 1", "kind": "heuristic", "beta": 1.0, "seeds": [0]},
            {**base, "arm": "heuristic best", "kind": "heuristic", "beta": "best", "betas": [0.3, 1.0], "seeds": [1]},
        ],
    }
    rows = run_suite(suite, tmp_path, progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 6, [r.get("error") for r in rows]
    sweep = {r["beta"]: r["score"] for r in rows if r["config"].get("beta") in (0.3, 1.0)}
    (later,) = [r for r in rows if r["config"].get("beta") == "best"]
    assert later["beta"] == max(sweep, key=sweep.get) and later["seed"] == 1
    heron_row = next(r for r in rows if "levels" in r)
    assert heron_row["labels"] > 0 and abs(sum(heron_row["levels"].values()) - 1.0) < 1e-9
    factor_sum = next(r for r in rows if r["config"].get("kind") == "factor_sum")
    assert factor_sum["labels"] > 0 and "levels" not in factor_sum
    text = report(rows, tmp_path, suite).read_text()
    assert "| panda:PandaReachDense-v3 | HERON (heuristic best) | - | 1 |" in text
    assert "level 1 (ee_to_target)" in text and "Mean over seeds:" in text
    assert f"seed 1: beta {later['beta']:g}" in text


def test_beta_best_before_its_sweep_is_a_clear_failure(tmp_path):
    entry = {"method": "heron", "task": "panda:PandaReachDense-v3", "steps": 300, "config": CONFIG, **RANKING}
    suite = {"entries": [{**entry, "kind": "heuristic", "beta": "best", "betas": [0.3]}]}
    (row,) = run_suite(suite, tmp_path, progress=False)
    assert row["status"] == "failed" and "--resume" in row["error"]
