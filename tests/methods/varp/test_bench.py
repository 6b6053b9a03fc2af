"""VARP's bench section: the study's suite, its entries' keys, and a tiny judges and policy study run through the
suite into the report."""

import os

import pytest

from robofeedback.bench.suite import expand, report, run_suite, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.varp.bench import VarpEntry

os.environ.setdefault("MUJOCO_GL", "egl")


def test_the_study_suite_has_the_judges_and_both_lambdas():
    entries = expand(load_yaml(suite_path("varp")))
    assert sorted(e["task"] for e in entries if e.get("part") == "judges")[0] == "metaworld:drawer-open"
    assert {(e["task"], VarpEntry.from_dict(e).agent_reg) for e in entries if "lambda" in e} == {
        (t, lam) for t in ("metaworld:drawer-open", "bullet:HopperBulletEnv-v0") for lam in (0.0, 0.1)
    }
    with pytest.raises(EntryError, match="'agent_reg'.*lambda"):
        VarpEntry.from_dict({**entries[-1], "agent_reg": 0.1})
    with pytest.raises(EntryError, match="part"):
        VarpEntry.from_dict({**entries[0], "part": "both"})


def test_a_tiny_study_runs_through_the_suite(tmp_path):
    config = {
        "her": None,
        "env_kwargs": {"terminate_on_success": False, "render_size": 32},
        "eval_every": 200,
        "eval_episodes": 2,
        "video_episodes": 0,
        "sac": {"learning_starts": 100, "batch_size": 32},
        "feedback": {"every": 100, "first_round": 100, "segment_length": 10},
        "preference": {"hidden": 16, "ensemble": 1, "max_epochs": 5},
    }
    task = "panda:PandaReachDense-v3"
    policy = {"method": "varp", "task": task, "steps": 200, "budget": 20, "rounds": 2, "config": config}
    suite = {
        "entries": [
            {
                "method": "varp",
                "task": "panda:PandaPushDense-v3",
                "part": "judges",
                "episodes": 1,
                "pairs": 6,
                "segment_length": 10,
            },
            {**policy, "arm": "lambda 0", "lambda": 0.0},
            {**policy, "arm": "lambda 0.1", "lambda": 0.1},
        ]
    }
    rows = run_suite(suite, tmp_path, progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 3, [r.get("error") for r in rows]
    judged = next(r for r in rows if "judges" in r)
    assert {j["sketch"] for j in judged["judges"]} == {None, False, True}
    effect = next(j["vs_plain"] for j in judged["judges"] if j["sketch"])  # the same pairs, sketched and plain
    assert 0 < effect["p_value"] <= 1 and effect["pairs"] <= 6
    assert effect["pairs_needed"] is None or effect["pairs_needed"] > 0
    assert list((tmp_path / "runs").glob("*/judge_examples.png"))
    text = report(rows, tmp_path, suite).read_text()
    assert "plain last frame vs sketched" in text and "| sketched | 6 |" in text
    assert "Chat VLM judge: not testable here: no chat VLM" in text
    assert "with and without the agent regularization" in text and f"| {task} | 0.1 | 0 | 200 |" in text
