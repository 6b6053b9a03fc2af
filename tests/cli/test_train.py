"""``robofeedback train`` (and ``rollout`` of what it trained): the env's reward, teachers, judges and their flags."""

import json

from robofeedback.cli import main


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
