import json
import re
import subprocess
import sys

import pytest

from robofeedback.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "robofeedback.cli", *args], capture_output=True, text=True)


def test_help_explains_every_command_and_option():
    out = run_cli("--help").stdout
    for command in ("envs", "train", "rollout"):
        assert command in out
    out = run_cli("train", "--help").stdout
    for option in ("--env", "--reward", "--algo", "--steps", "--seed", "--out", "--config", "--no-resume"):
        assert option in out


def test_envs_lists_every_family(capsys):
    assert main(["envs", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["panda"]["installed"] and "PandaReach-v3" in info["panda"]["ids"]
    assert "drawer-open" in info["metaworld"]["ids"] and "AntBulletEnv-v0" in info["bullet"]["ids"]
    assert main(["envs", "--family", "bullet"]) == 0
    assert "bullet:HopperBulletEnv-v0" in capsys.readouterr().out


def test_describe_prints_spaces_and_factors(capsys):
    assert main(["envs", "--describe", "bullet:AntBulletEnv-v0"]) == 0
    out = capsys.readouterr().out
    assert "action space:      Box(-1.0, 1.0, (8,), float32)" in out
    assert "+ progress:" in out and "- joints_at_limit:" in out
    assert main(["envs", "--describe", "metaworld:reach", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["factors"]["obj_to_target"]["sign"] == -1 and described["family"] == "metaworld"


def test_train_then_rollout(tmp_path, capsys, tiny_train_config):
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config))
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--env",
            "panda:PandaReach-v3",
            "--reward",
            "env",
            "--algo",
            "sac",
            "--steps",
            "200",
            "--seed",
            "0",
            "--out",
            str(out),
            "--config",
            str(config),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "success rate" in printed and str(out / "eval.mp4") in printed and str(out / "learning_curve.png") in printed

    rollouts = tmp_path / "rollouts"
    code = main(
        [
            "rollout",
            "--env",
            "panda:PandaReach-v3",
            "--policy",
            str(out),
            "--episodes",
            "2",
            "--video",
            "--render-size",
            "64",
            "--out",
            str(rollouts),
        ]
    )
    assert code == 0
    assert len(list(rollouts.glob("traj_*.npz"))) == 2 and (rollouts / "rollout.mp4").exists()
    assert "episode 1:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--env", "panda:PandaRech-v3", "--steps", "10"], "Did you mean PandaReach-v3"),
        (["rollout", "--env", "panda:PandaReach-v3", "--policy", "nowhere/model.zip"], "no model at"),
        (["envs", "--family", "atari"], "unknown family"),
        (["train", "--env", "metaworld:drawer-open", "--reward", "varp", "--judge", "chat"], "base_url"),
        (["train", "--env", "panda:PandaSlide-v3", "--reward", "varp"], "--judge clip needs --goal"),
    ],
)
def test_errors_exit_2_with_a_message(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_bad_numbers_are_refused_by_the_parser():
    result = run_cli("train", "--env", "panda:PandaReach-v3", "--steps", "0")
    assert result.returncode == 2 and "positive integer" in result.stderr


def test_train_from_a_mistaken_teacher(tmp_path, capsys, tiny_train_config):
    import yaml

    config = tmp_path / "tiny.yaml"
    settings = {
        **tiny_train_config,
        "video_episodes": 0,
        "env_kwargs": {"max_episode_steps": 50},
        "preference": {"hidden": 32, "layers": 1, "max_epochs": 10},
    }
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "pref"
    code = main(
        [
            "train",
            "--env",
            "metaworld:reach",
            "--reward",
            "preference",
            "--teacher",
            "mistake",
            "--teacher-arg",
            "0.1",
            "--budget",
            "12",
            "--labels-per-round",
            "6",
            "--feedback-every",
            "200",
            "--segment-length",
            "10",
            "--steps",
            "400",
            "--out",
            str(out),
            "--config",
            str(config),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "feedback: 12 labels from script:mistake-0.1 in 2 rounds" in capsys.readouterr().out
    from robofeedback.data.store import FeedbackStore

    assert len(FeedbackStore(out / "feedback.db").labels(source="script:mistake-0.1")) == 12
    assert (
        main(
            [
                "train",
                "--env",
                "metaworld:reach",
                "--reward",
                "preference",
                "--teacher",
                "skip",
                "--steps",
                "10",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "needs --teacher-arg" in capsys.readouterr().err


def test_train_varp_with_the_clip_judge_on_plain_frames(tmp_path, capsys, tiny_train_config):
    import yaml

    from robofeedback.data.store import FeedbackStore

    config = tmp_path / "tiny.yaml"
    settings = {
        **tiny_train_config,
        "video_episodes": 0,
        "env_kwargs": {"max_episode_steps": 50, "render_size": 48},
        "preference": {"hidden": 16, "layers": 1, "max_epochs": 5},
    }
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "varp"
    args = ["train", "--env", "metaworld:drawer-open", "--reward", "varp", "--judge", "clip", "--no-sketch"]
    args += ["--agent-reg", "0.2", "--budget", "8", "--labels-per-round", "4", "--feedback-every", "150"]
    args += ["--segment-length", "10", "--steps", "400", "--config", str(config), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "labels from vlm:clip-mini" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reward"] == "varp" and summary["config"]["preference"]["agent_reg"] == 0.2
    labels = FeedbackStore(out / "feedback.db").labels(kind="preference")
    assert len(labels) == 8 and {lb.source for lb in labels} == {"vlm:clip-mini"}


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


def test_feedback_efficiency_flags_become_reward_model_settings():
    from robofeedback.cli import build_parser
    from robofeedback.cli.train import preference_overrides

    args = build_parser().parse_args(
        ["train", "--env", "panda:PandaReachDense-v3", "--reward", "preference", "--goal-features", "--goal-only"]
        + ["--goal-distance", "--input-norm", "--label-smoothing", "0.1", "--max-updates", "9"]
    )
    assert preference_overrides(args) == {
        "goal_features": True,
        "goal_only": True,
        "goal_distance": True,
        "input_norm": True,
        "label_smoothing": 0.1,
        "max_updates": 9,
    }
