import json

import pytest

from robofeedback.bench.preference import entries, labels_needed, round_cost


def test_bench_entries_follow_task_and_teacher_seeds():
    spec = {
        "seeds": [0],
        "budgets": [100],
        "teachers": {"oracle": {}, "mistake": {"eps": 0.1, "seeds": [0]}},
        "tasks": {"a": {"steps": 10, "seeds": [0, 1], "budgets": [50, 100], "rounds": 4}, "b": {"steps": 20}},
    }
    runs = {(e["task"], e["method"], e["teacher"], e["budget"], e["seed"]) for e in entries(spec)}
    assert ("a", "pebble", "oracle", 50, 1) in runs and ("a", "pebble", "mistake", 50, 0) in runs
    assert ("a", "pebble", "mistake", 50, 1) not in runs  # the teacher's own seeds
    assert ("b", "pebble", "oracle", 100, 0) in runs and ("b", "true reward", None, 0, 0) in runs
    assert len(runs) == 2 + 2 * 2 + 2 + 1 + 2  # a: true x2, oracle 2x2, mistake 2x1; b: true, oracle, mistake
    mistake = next(e for e in entries(spec) if e["teacher"] == "mistake")
    assert mistake["params"] == {"eps": 0.1} and mistake["rounds"] == 4


def test_bench_methods_are_settings_and_a_task_may_run_some_of_them():
    spec = {
        "seeds": [0],
        "budgets": [100],
        "teachers": {"oracle": {}},
        "methods": {"pebble": None, "surf": {"preference": {"pseudo_threshold": 0.99}}},
        "tasks": {"a": {"steps": 10}, "b": {"steps": 10, "methods": ["surf"]}},
    }
    runs = entries(spec)
    assert sorted((e["task"], e["method"]) for e in runs) == [
        ("a", "pebble"),
        ("a", "surf"),
        ("a", "true reward"),
        ("b", "surf"),
        ("b", "true reward"),
    ]
    assert next(e for e in runs if e["method"] == "surf")["settings"] == {"preference": {"pseudo_threshold": 0.99}}
    spec["tasks"]["b"]["methods"] = ["rune"]
    with pytest.raises(ValueError, match="rune"):
        entries(spec)


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


def test_heron_bench_sweeps_beta_on_the_first_seed_and_then_runs_the_best(tmp_path):
    import yaml

    from robofeedback.bench import heron

    spec = {
        "betas": [0.3, 1.0],
        "tasks": {
            "panda:PandaReachDense-v3": {
                "algo": "sac",
                "steps": 300,
                "seeds": [0, 1],
                "factors": ["ee_to_target", "progress", "ctrl_cost"],
                "sigma": [0.5, 0.5, 0.5],
                "config": {
                    "eval_every": 300,
                    "eval_episodes": 2,
                    "video_episodes": 0,
                    "sac": {"learning_starts": 100, "batch_size": 32},
                    "preference": {"hidden": 16, "ensemble": 1},
                    "feedback": {"every": 100, "first_round": 100, "labels_per_round": 32},
                    "env_kwargs": {"terminate_on_success": False, "render_size": 32},
                },
            }
        },
    }
    first = heron.entries(spec, [])
    assert sorted((e["method"], e["beta"], e["seed"]) for e in first if e["method"] == "heuristic") == [
        ("heuristic", 0.3, 0),
        ("heuristic", 1.0, 0),
    ]
    config = tmp_path / "heron.yaml"
    config.write_text(yaml.safe_dump(spec))
    report = heron.main(["--config", str(config), "--out", str(tmp_path / "out")])
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    sweep = {r["beta"]: r["score"] for r in rows if r["method"] == "heuristic" and r["seed"] == 0}
    (later,) = [r for r in rows if r["method"] == "heuristic" and r["seed"] == 1]
    assert later["beta"] == max(sweep, key=sweep.get)
    assert len(rows) == 2 * 3 + 2 + 1
    (heron_row, *_) = [r for r in rows if r["method"] == "heron"]
    assert heron_row["labels"] > 0 and abs(sum(heron_row["levels"].values()) - 1.0) < 1e-9
    text = report.read_text()
    for beta in (0.3, 1.0):  # the best beta ran on both seeds
        seeds = 2 if beta == later["beta"] else 1
        assert f"| panda:PandaReachDense-v3 | sac | 300 | heuristic (beta {beta:g}) | {seeds} |" in text
    assert "level 1 (ee_to_target)" in text and (tmp_path / "out" / "heron_curves.png").exists()


def test_demo_bench_reports_each_teacher_against_its_target(tmp_path):
    from robofeedback.bench.demo import report

    rows = [
        {
            "teacher": "oracle",
            "seed": s,
            "labels": 100,
            "success_rate": v,
            "wall_time_s": 300.0 + s,
            "git_commit": "abc1234f",
        }
        for s, v in enumerate([1.0, 0.9, 0.8])
    ] + [{"teacher": "mistake", "seed": 0, "labels": 100, "success_rate": 0.5, "wall_time_s": 310.0}]
    rows[0]["true_reward_success_rate"] = 1.0
    text = report(rows, tmp_path).read_text()
    oracle = next(line for line in text.splitlines() if line.startswith("| oracle"))
    assert "| 0, 1, 2 |" in oracle and "0.90 ± 0.08 (1.00, 0.90, 0.80) | 0.9 | 1.00 |" in oracle and "abc1234" in oracle
    mistake = next(line for line in text.splitlines() if line.startswith("| mistake"))
    assert "0.50 (0.50) | 0.8 | - |" in mistake
