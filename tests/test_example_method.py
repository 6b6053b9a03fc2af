"""The worked example of docs/adding-a-method.md: a reward method in an outside package (tests/plugins/
robofeedback_example) that registers through an entry point, and then trains with ``train(reward=...)``, shows in
the CLI and runs in the bench suite like a built-in one."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import robofeedback
from robofeedback.envs import make
from robofeedback.methods.bench import EntryError
from robofeedback.protocols import Transitions
from robofeedback.registry import ENTRY_POINT_GROUP

PLUGINS = Path(__file__).parent / "plugins"
SUITE = PLUGINS / "example_suite.yaml"

# Runs in a fresh interpreter, so that the registry's once-only loading sees the installed entry point.
CHECK = """
import contextlib, io, json, sys
from robofeedback import registry
from robofeedback.bench import suite
from robofeedback.rl.train import train

out = {"names": registry.names(), "train": registry.names("train"), "bench": registry.names("bench")}
config = {"eval_every": 200, "eval_episodes": 2, "video_episodes": 0, "n_envs": 1,
          "sac": {"learning_starts": 100, "batch_size": 32}}
result = train("panda:PandaReachDense-v3", reward="goal_distance", total_steps=300, out_dir="train", config=config,
               progress=False)
out["trained"] = {"steps": result.steps, "final_eval": result.final_eval}
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    from robofeedback.cli import main
    main(["train", "--help"])
out["train_help"] = help_text.getvalue()
out["suite_exit"] = suite.main(["--suite", sys.argv[1], "--out", "bench", "--jobs", "1", "--no-progress"])
json.dump(out, open("out.json", "w"))
"""


@pytest.fixture
def example(monkeypatch):
    """The example package, importable in this process."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    import robofeedback_example

    return robofeedback_example


def install(site: Path) -> None:
    """What pip would leave for the example package: a dist-info folder with its metadata and entry point."""
    info = site / "robofeedback_example-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: robofeedback-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nexample = robofeedback_example:METHOD\n")


def test_the_reward_is_minus_the_distance_minus_the_action_penalty(example):
    from robofeedback_example.reward import GoalDistanceReward
    from robofeedback_example.settings import GoalDistanceSettings

    info = [{"factors": {"ee_to_target": 0.5}}, {"factors": {"ee_to_target": 0.1}}]
    actions = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    batch = Transitions(np.zeros((2, 6)), actions, np.zeros((2, 6)), info)
    reward = GoalDistanceReward(GoalDistanceSettings(action_cost=0.1))
    np.testing.assert_allclose(reward(batch), [-0.6, -0.3], rtol=1e-6)
    assert reward(batch).dtype == np.float32


def test_settings_reject_unknown_keys_and_bad_values(example):
    from robofeedback_example.settings import GoalDistanceEntry, GoalDistanceSettings

    entry = {"method": "goal_distance", "task": "panda:PandaReachDense-v3", "seed": 0, "steps": 300, "config": {}}
    assert GoalDistanceEntry.from_dict({**entry, "action_cost": 0.01}).action_cost == 0.01
    with pytest.raises(EntryError, match="unknown key 'budget'; allowed keys: .*distance, action_cost"):
        GoalDistanceEntry.from_dict({**entry, "budget": 100})
    with pytest.raises(ValueError, match="action_cost must be a finite number >= 0"):
        GoalDistanceSettings(action_cost=-1.0)
    with pytest.raises(ValueError, match="action_cost must be a finite number >= 0"):
        GoalDistanceEntry.from_dict({**entry, "action_cost": -1.0})


def test_build_checks_the_env_reports_the_distance(example):
    from robofeedback_example.reward import GoalDistanceReward, build
    from robofeedback_example.settings import GoalDistanceSettings

    env = make("panda:PandaReachDense-v3", seed=0)
    try:
        assert isinstance(build(env, None, 0), GoalDistanceReward)
        with pytest.raises(ValueError, match="does not report; its factors are ee_to_target"):
            build(env, None, 0, GoalDistanceSettings(distance="object_to_target"))
    finally:
        env.close()


def test_flags_make_the_reward(example):
    parser = argparse.ArgumentParser()
    example.METHOD.add_arguments(parser)
    reward, feedback, overrides = example.METHOD.from_args(parser.parse_args(["--action-cost", "0.5"]))
    assert reward.settings.action_cost == 0.5 and reward.settings.distance == "ee_to_target"
    assert feedback is None and overrides == {}


def test_an_entry_point_method_trains_shows_in_the_cli_and_runs_in_the_suite(tmp_path):
    install(tmp_path / "site")
    root = Path(robofeedback.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (root, PLUGINS, tmp_path / "site"))), "COLUMNS": "300"}
    (tmp_path / "check.py").write_text(CHECK)
    done = subprocess.run(
        [sys.executable, "check.py", str(SUITE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())

    assert "goal_distance" in out["names"] and "goal_distance" in out["train"] and "goal_distance" in out["bench"]
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert out["trained"]["steps"] == 300 and summary["reward"] == "goal_distance"
    assert np.isfinite(out["trained"]["final_eval"]["mean_env_return"])

    assert out["suite_exit"] == 0
    (row,) = [json.loads(line) for line in (tmp_path / "bench" / "results.jsonl").read_text().splitlines()]
    assert row["status"] == "ok" and row["method"] == "goal_distance" and row["steps"] == 300
    assert row["distance"] == "ee_to_target" and row["action_cost"] == 0.01
    text = (tmp_path / "bench" / "REPORT.md").read_text()
    assert "| goal distance (example) |" in text
    assert "## Goal distance (example method)" in text
    assert "- panda:PandaReachDense-v3 seed 0: r = -ee_to_target - 0.01 ||a||^2" in text

    found = re.search(r"--reward \{([^}]*)\}", out["train_help"])
    assert found, out["train_help"][:2000]
    assert "goal_distance" in found.group(1).split(",")
    assert "--distance-factor" in out["train_help"] and "--action-cost" in out["train_help"]


def test_the_guide_shows_the_code_as_it_is():
    """Each line of docs/adding-a-method.md's Python and YAML blocks is a line of the code it shows."""
    guide = (Path(__file__).parents[1] / "docs" / "adding-a-method.md").read_text()
    sources = [*sorted((PLUGINS / "robofeedback_example").glob("*.py")), SUITE, Path(__file__)]
    sources.append(Path(robofeedback.__file__).parent / "registry.py")
    lines = {line.strip() for path in sources for line in path.read_text().splitlines()}
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 8
    missing = [line for block in blocks for line in block.splitlines() if line.strip() and line.strip() not in lines]
    assert not missing, missing
