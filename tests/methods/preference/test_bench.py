"""PEBBLE's bench section: the preference study's suite expands to its grid, entries reject unknown keys, the
headline and cost measures, a tiny study runs through the suite, and the study's recorded results still render."""

import json
from pathlib import Path

import pytest

from robofeedback.bench.suite import entry_id, expand, report, run_suite, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.preference.bench import PreferenceEntry, labels_needed, round_cost
from robofeedback.methods.preference.bench import report as section

RESULTS = Path(__file__).parents[3] / "docs" / "results" / "preference" / "results.jsonl"


def test_the_study_suite_is_every_arm_teacher_and_budget_on_every_seed_next_to_the_true_reward():
    entries = expand(load_yaml(suite_path("preference")), tasks=["panda:PandaReachDense-v3"])
    runs = {(e.get("arm"), e.get("teacher", "oracle"), e.get("budget"), e["seed"]) for e in entries}
    assert ("true reward", "oracle", None, 2) in runs and ("surf", "mistake", 50, 1) in runs
    assert len(entries) == 3 + 11 * 2 * 6 * 3
    surf = next(e for e in entries if e.get("arm") == "surf" and e.get("teacher") == "mistake")
    assert surf["settings"] == {"preference": {"pseudo_threshold": 0.99, "pseudo_ratio": 4, "crop": 2}}
    assert surf["teacher_params"] == {"eps": 0.1} and surf["rounds"] == 10 and surf["fresh_pairs"] == 500
    assert len({entry_id(e) for e in entries}) == len(entries)
    for entry in entries:
        PreferenceEntry.from_dict(entry)
    with pytest.raises(EntryError, match="'budgets'.*teacher_params"):
        PreferenceEntry.from_dict({**entries[0], "budgets": [1]})


def test_labels_needed_is_the_first_budget_within_ten_points_of_the_true_reward(tmp_path):
    rows = [
        {"budget": b, "late_success": s}
        for b, s in ((50, 0.2), (50, 0.4), (100, 0.8), (100, 0.85), (200, 0.95), (200, 0.9))
    ]
    assert labels_needed(rows, 0.9) == 100
    assert labels_needed(rows, 1.0) == 200
    assert labels_needed(rows[:4], 1.0) is None
    log = tmp_path / "feedback.jsonl"
    rounds = [(1000, 10.0, 5), (2000, 20.0, 5), (3000, 32.0, 5), (4000, 45.0, 5), (5000, 46.0, 0)]
    log.write_text("".join(json.dumps({"steps": s, "wall_time_s": w, "queries": q}) + "\n" for s, w, q in rounds))
    assert round_cost(log) == {"first_s": 10.0, "last_s": 13.0, "ratio": 1.3}  # the last round without labels is out


def test_the_results_recorded_before_the_suite_still_render():
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    text = "\n".join(section(rows))
    recorded = (RESULTS.parent / "REPORT.md").read_text().split("\n\nSuccess rate on the final")[0]
    headline = [line for line in recorded.splitlines() if line.startswith("| ") and "labels needed" not in line]
    assert len(headline) > 10 and all(line in text for line in headline)
    assert "| panda:PandaReachDense-v3 | 12000 | true reward | - | - |" in text


def test_a_tiny_study_runs_through_the_suite(tmp_path):
    panda = {
        "her": None,
        "env_kwargs": {"terminate_on_success": False, "render_size": 32},
        "eval_every": 200,
        "eval_episodes": 2,
        "video_episodes": 0,
        "sac": {"learning_starts": 100, "batch_size": 32},
        "feedback": {"every": 100, "first_round": 100, "segment_length": 10},
        "preference": {"hidden": 16, "ensemble": 1, "max_epochs": 5},
    }
    base = {"method": "preference", "task": "panda:PandaReachDense-v3", "steps": 400, "config": panda}
    suite = {
        "name": "tiny preference",
        "seeds": [0],
        "entries": [
            {**base, "arm": "true reward", "true_reward": True},
            {
                **base,
                "arm": "bounded",
                "settings": {"preference": {"max_updates": 10}},
                "budget": [20, 40],
                "rounds": 2,
                "fresh_pairs": 20,
                "round_cost": True,
            },
        ],
    }
    rows = run_suite(suite, tmp_path, progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 3, [r.get("error") for r in rows]
    learned = [r for r in rows if r["config"].get("budget")]
    assert all(0 <= r["reward_accuracy_fresh_pairs"] <= 1 and "round_cost" in r for r in learned)
    assert all(r["labels"] <= r["config"]["budget"] for r in learned)
    measured = [r["reward_metrics"] for r in learned]  # against the env's reward, on fresh coverage episodes
    assert all(0 <= m["pref_accuracy"] <= 1 and 0 <= m["epic_distance"] <= 1 for m in measured)
    assert all(m["epic_canonical"] == "full" and m["coverage_transitions"] == 16 * 50 for m in measured)
    assert "reward_metrics" not in next(r for r in rows if not r["config"].get("budget"))  # the env's own reward
    text = report(rows, tmp_path, suite).read_text()
    assert "## Preference learning vs the true reward" in text
    assert "| panda:PandaReachDense-v3 | bounded | oracle |" in text
