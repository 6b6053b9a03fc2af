"""``robofeedback demo``: the annotation app with a scripted annotator answering as SAC learns."""

import json
import re

import pytest

from robofeedback.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["oracle", "mistake"])
def test_demo_auto_runs_the_loop_through_the_app(tmp_path, capsys, tiny_train_config, teacher):
    """`robofeedback demo --auto` (make demo): the scripted teacher answers over HTTP, training learns from those
    labels, progress is printed and logged a line per evaluation, and the summary compares with the true reward."""
    import yaml

    from robofeedback.data.store import FeedbackStore

    config = tmp_path / "demo.yaml"
    settings = {
        **tiny_train_config,
        "her": None,
        "env_kwargs": {"terminate_on_success": False, "render_size": [64, 48]},
        "feedback": {"every": 150, "first_round": 150, "segment_length": 10, "labels_per_round": 4, "budget": 8},
        "preference": {"hidden": 32, "layers": 1, "max_epochs": 10, "use_actions": False},
    }
    config.write_text(yaml.safe_dump(settings))
    store = tmp_path / "feedback.db"
    args = ["demo", "--auto", "--steps", "320", "--port", "0", "--store", str(store), "--out", str(tmp_path / "run")]
    compare = [] if teacher == "oracle" else ["--no-compare"]
    assert main([*args, "--config", str(config), "--wait", "120", "--teacher", teacher, *compare]) == 0
    out = capsys.readouterr().out
    summary = re.search(r"demo: success ([0-9.]+) on \d+ evaluation episodes after 320 steps, from 8 labels given", out)
    assert summary and 0.0 <= float(summary.group(1)) <= 1.0
    assert ("SAC on the env's own reward: success" in out) == (teacher == "oracle")
    progress = (tmp_path / "run" / "progress.log").read_text().splitlines()
    assert progress[0].startswith("steps ") and "| labels " in progress[0] and progress[-1].startswith("demo: success")
    assert progress[0] in out  # the same lines went to the terminal
    fresh = float(re.search(r"agrees with the env's reward on ([0-9.]+) of 500 fresh segment pairs", out).group(1))
    assert 0.0 <= fresh <= 1.0
    record = json.loads((tmp_path / "run" / "demo.json").read_text())  # what bench.demo collects
    assert record["teacher"] == teacher and record["labels"] == 8
    assert record["success_rate"] == pytest.approx(float(summary.group(1)), abs=0.005)
    assert ("true_reward_success_rate" in record) == (teacher == "oracle")
    labels = FeedbackStore(store).labels(kind="preference")
    assert len(labels) == 8 and {lb.source for lb in labels} == {
        "script:oracle" if teacher == "oracle" else "script:mistake-0.1"
    }
