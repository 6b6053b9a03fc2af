"""The benchmark suite: entries expand, run in worker processes or on a local Ray instance with the same results,
resume without redoing finished work, and end in a report (and a README section) with tables and plots."""

import json

import pytest
import yaml

from robofeedback.bench.common import read_results
from robofeedback.bench.suite import (
    SuiteError,
    entry_id,
    expand,
    report,
    run_entry,
    run_suite,
    update_readme,
)

PANDA = {"her": None, "env_kwargs": {"terminate_on_success": False, "render_size": 48}}
TINY = {
    "name": "tiny",
    "seeds": [0],
    "train": {
        "eval_every": 200,
        "eval_episodes": 2,
        "video_episodes": 0,
        "sac": {"learning_starts": 100, "batch_size": 32},
    },
    "entries": [
        {"method": "env", "task": "panda:PandaReachDense-v3", "steps": 400, "config": PANDA},
        {"method": "random", "task": "panda:PandaReachDense-v3", "episodes": 3},
        {
            "method": "icpl",
            "task": "panda:PandaReachDense-v3",
            "text": "move the gripper to the green target",
            "iterations": 1,
            "candidates": 2,
            "steps": 200,
            "config": PANDA,
        },
        {"method": "safe_mpc", "task": "safety:pendulum", "trials": 1, "attempts": 2},
    ],
}
TIMINGS = ("started_at", "wall_time_s", "folder", "executor", "mve_ms_mean", "mve_ms_max")


def test_entries_expand_per_seed_and_budget_and_filter():
    suite = {
        "seeds": [0, 1],
        "train": {"eval_every": 100},
        "entries": [
            {"method": "preference", "task": "panda:PandaReachDense-v3", "steps": 10, "budget": [50, 100]},
            {"method": "env", "task": "metaworld:reach", "steps": 10, "seeds": [3], "config": {"eval_every": 5}},
            {"method": "perf", "measure": "cutting_plane"},
        ],
    }
    ids = [entry_id(e) for e in expand(suite)]
    assert ids == [
        "preference|panda:PandaReachDense-v3|50 labels|seed0",
        "preference|panda:PandaReachDense-v3|50 labels|seed1",
        "preference|panda:PandaReachDense-v3|100 labels|seed0",
        "preference|panda:PandaReachDense-v3|100 labels|seed1",
        "env|metaworld:reach||seed3",
        "perf|perf|cutting_plane|seed0",
    ]
    env = expand(suite, only=["env"])
    assert len(env) == 1 and env[0]["config"] == {"eval_every": 5}  # the entry's own setting wins
    assert [e["task"] for e in expand(suite, tasks=["metaworld:reach"])] == ["metaworld:reach"]
    with pytest.raises(SuiteError, match="unknown method 'pebble'"):
        expand(suite, only=["pebble"])
    with pytest.raises(SuiteError, match="needs a task"):
        expand({"entries": [{"method": "env", "steps": 10}]})
    with pytest.raises(SuiteError, match="both env"):
        expand({"entries": [{"method": "env", "task": "x"}, {"method": "env", "task": "x"}]})
    scaled = [entry_id(e) for e in expand(suite, only=["env", "perf"], seeds=3)]  # --seeds 3: over every entry's
    assert scaled == [*(f"env|metaworld:reach||seed{i}" for i in range(3)), "perf|perf|cutting_plane|seed0"]
    with pytest.raises(SuiteError, match="--seeds must be >= 1"):
        expand(suite, seeds=0)


def _comparable(rows):
    return {r["id"]: {k: v for k, v in r.items() if k not in TIMINGS} for r in rows}


@pytest.mark.slow
def test_the_suite_gives_the_same_results_locally_and_on_ray_and_resumes(tmp_path):
    """ICPL's candidates train through the suite's executor too (inside the Ray task, on the same Ray)."""
    local = run_suite(TINY, tmp_path / "local", "local", jobs=2, progress=False)
    assert {r["status"] for r in local} == {"ok"}, [r.get("traceback") for r in local]
    on_ray = run_suite(TINY, tmp_path / "ray", "ray", jobs=2, progress=False)
    assert {r["executor"] for r in on_ray} == {"ray"}
    assert _comparable(on_ray) == _comparable(local)

    for row in local:  # every number comes with its seed, commit and config
        assert row["git_commit"] and row["config"]["seed"] == row["seed"] == 0
    env = next(r for r in local if r["method"] == "env")
    assert [c["steps"] for c in env["curve"]] == [200, 400]
    icpl = next(r for r in local if r["method"] == "icpl")
    assert icpl["steps"] == 400 and icpl["labels"] == 1  # two candidates of 200 steps, one ranking of two
    measured = icpl["reward_metrics"]  # the best candidate's reward code against the env's reward
    assert 0 <= measured["epic_distance"] <= 1 and measured["epic_canonical"] == "shift"

    with pytest.raises(SuiteError, match="--resume"):
        run_suite(TINY, tmp_path / "local", "local", progress=False)
    again = run_suite(TINY, tmp_path / "local", "local", resume=True, progress=False)
    assert _comparable(again) == _comparable(local)
    assert len(read_results(tmp_path / "local")) == len(TINY["entries"])  # nothing was run twice


def test_a_failing_entry_is_reported_and_rerun_on_resume(tmp_path):
    suite = {
        "name": "failing",
        "entries": [
            {"method": "random", "task": "panda:PandaReachDense-v3", "episodes": 2, "env_kwargs": {"colour": "red"}},
            {"method": "safe_mpc", "task": "safety:pendulum", "trials": 1, "attempts": 1},
        ],
    }
    rows = run_suite(suite, tmp_path, progress=False)
    failed = next(r for r in rows if r["method"] == "random")
    assert failed["status"] == "failed" and "colour" in failed["error"]
    text = report(rows, tmp_path, suite).read_text()
    assert "## Failed entries" in text and "random|panda:PandaReachDense-v3" in text
    assert "| safety:pendulum | true constraint inside | 2 | 1 |" in text

    del suite["entries"][0]["env_kwargs"]
    rows = run_suite(suite, tmp_path, resume=True, progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert len(read_results(tmp_path)) == 3  # the failed run and its rerun; the finished one stayed


def test_an_entry_that_needs_the_task_in_words_says_so(tmp_path):
    for method in ("icpl", "bilevel", "varp"):
        entry = {"method": method, "task": "gym:Pendulum-v1", "steps": 10, "seed": 0, "config": {}}
        row = run_entry((entry, str(tmp_path), {"kind": "local", "jobs": 1, "address": None}))
        assert row["status"] == "failed"
        assert ("needs text:" if method != "varp" else "needs goal: and baseline:") in row["error"]


def test_the_command_writes_the_report_and_the_readme_section(tmp_path, monkeypatch):
    from robofeedback.cli import main

    monkeypatch.chdir(tmp_path)  # the README given as a relative path, as from a checkout

    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(
        yaml.safe_dump(
            {
                "name": "cli",
                "entries": [
                    {"method": "perf", "measure": "cutting_plane", "params": {"r": 4, "corrections": 2}},
                    {"method": "random", "task": "panda:PandaReachDense-v3", "episodes": 2, "seeds": [0, 1]},
                ],
            }
        )
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Project\n\n## Results\n\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\n\nEnd\n"
    )
    out = tmp_path / "out"
    args = ["--suite", str(suite_file), "--out", str(out), "--readme", "README.md", "--jobs", "2", "--no-progress"]
    code = main(["bench", *args])
    assert code == 0
    text = (out / "REPORT.md").read_text()
    assert "| panda:PandaReachDense-v3 | random actions | - | 0, 1 |" in text
    assert "MVE re-centring per correction, r = 4" in text
    assert (out / "curves_steps.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows[-1]["id"] == "perf|perf|cutting_plane|seed0"  # timed last, alone, in the suite's process
    section = readme.read_text()
    assert "old" not in section and section.endswith("<!-- bench:results:end -->\n\nEnd\n")
    kept = tmp_path / "docs/results/cli"
    assert "](docs/results/cli/curves_steps.png)" in section and (kept / "curves_steps.png").exists()
    assert {p.name for p in kept.iterdir()} >= {"REPORT.md", "results.jsonl", "suite.json", "command.txt"}
    assert "--jobs 2" in (kept / "command.txt").read_text() and "Command: `robofeedback bench --suite" in text

    assert main(["bench", "--suite", "nonesuch", "--out", str(tmp_path / "x")]) == 2
    readme.write_text("no markers")
    with pytest.raises(SuiteError, match="markers"):
        update_readme(readme, out / "REPORT.md", tmp_path / "docs" / "results" / "cli")
