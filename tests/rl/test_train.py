import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import TASK, negative_distance

from robofeedback.data import video_codec
from robofeedback.rl import FnReward, load_train_config, train


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sac_her_run_writes_everything_and_resumes(tmp_path, tiny_train_config):
    out = tmp_path / "reach"
    result = train(
        "panda:PandaReach-v3",
        algo="sac",
        total_steps=400,
        seed=0,
        out_dir=out,
        config=tiny_train_config,
        progress=False,
    )
    assert result.steps == 400
    assert set(result.final_eval) >= {"mean_env_return", "success_rate", "mean_length"}
    assert [r["steps"] for r in _rows(out / "eval.jsonl")] == [200, 400]
    assert video_codec(result.video) == "h264"
    assert result.learning_curve.stat().st_size > 10_000
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "replay_buffer.pkl").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["env"] == "panda:PandaReach-v3"
    assert summary["code"]["packages"]["stable-baselines3"]
    if (Path(__file__).parents[2] / ".git").exists():
        assert len(summary["code"]["git_commit"]) == 40
    assert "HerReplayBuffer" in type(result.model.replay_buffer).__name__

    again = train(
        "panda:PandaReach-v3",
        algo="sac",
        total_steps=600,
        seed=0,
        out_dir=out,
        config=tiny_train_config,
        progress=False,
    )
    assert again.steps == 600
    assert [r["steps"] for r in _rows(out / "eval.jsonl")] == [200, 400, 600]
    assert again.model.replay_buffer.size() >= 400 // 50  # the saved buffer came back (HER counts episodes)


def test_resume_refuses_another_run(tmp_path, tiny_train_config):
    out = tmp_path / "run"
    train("panda:PandaReach-v3", algo="sac", total_steps=200, out_dir=out, config=tiny_train_config, progress=False)
    with pytest.raises(ValueError, match="another run"):
        train("panda:PandaReach-v3", algo="td3", total_steps=200, out_dir=out, config=tiny_train_config, progress=False)
    fresh = train(
        "panda:PandaReach-v3",
        algo="td3",
        total_steps=200,
        out_dir=out,
        config=tiny_train_config,
        resume=False,
        progress=False,
    )
    assert fresh.steps == 200 and [r["steps"] for r in _rows(out / "eval.jsonl")] == [200]


def test_same_seed_same_numbers(tmp_path, tiny_train_config):
    def run(name):
        train(
            "panda:PandaReach-v3",
            total_steps=300,
            seed=3,
            out_dir=tmp_path / name,
            config=tiny_train_config,
            progress=False,
        )
        return [(r["mean_env_return"], r["success_rate"]) for r in _rows(tmp_path / name / "eval.jsonl")]

    assert run("a") == run("b")


def test_learned_style_reward_trains_on_flat_observations(tmp_path, tiny_train_config):
    result = train(
        "panda:PandaReach-v3",
        reward=FnReward(negative_distance),
        total_steps=300,
        out_dir=tmp_path,
        config=tiny_train_config,
        progress=False,
    )
    assert result.model.observation_space.shape == (12,)
    assert json.loads((tmp_path / "summary.json").read_text())["reward"] == "FnReward"


def test_ppo_on_locomotion_and_td3_on_metaworld(tmp_path, tiny_train_config):
    ppo = train(
        "bullet:HopperBulletEnv-v0",
        algo="ppo",
        total_steps=256,
        out_dir=tmp_path / "ppo",
        config=tiny_train_config,
        progress=False,
    )
    assert ppo.steps == 256 and "success_rate" not in ppo.final_eval
    config = {**tiny_train_config, "env_kwargs": {"max_episode_steps": 50}}
    td3 = train(
        "metaworld:reach",
        algo="td3",
        total_steps=200,
        n_envs=2,
        out_dir=tmp_path / "td3",
        config=config,
        progress=False,
    )
    assert td3.steps >= 200 and td3.final_eval["mean_length"] == 50
    assert td3.model.action_noise is not None


def test_env_instances_and_factories(tmp_path, tiny_train_config):
    from robofeedback.envs import make

    config = {**tiny_train_config, "video_episodes": 0}
    env = make("metaworld:reach", seed=0, max_episode_steps=20)
    result = train(env, total_steps=100, out_dir=tmp_path / "instance", config=config, progress=False)
    assert result.video is None and result.final_eval["mean_length"] == 20
    result = train(
        lambda: make("Pendulum-v1", agent_pos_fn=lambda raw: np.array([np.sin(raw.state[0]), np.cos(raw.state[0]), 0])),
        algo="ppo",
        total_steps=128,
        n_envs=2,
        out_dir=tmp_path / "f",
        config=config,
        progress=False,
    )
    assert result.steps == 256  # PPO collects whole rollouts: 2 envs x n_steps 128
    with pytest.raises(ValueError, match="n_envs=1"):
        train(env, total_steps=100, n_envs=2, out_dir=tmp_path / "x", config=config, progress=False)


def test_config_defaults_and_overrides(tmp_path):
    cfg = load_train_config("panda", "sac", 1000)
    assert cfg.her == {"n_sampled_goal": 4, "goal_selection_strategy": "future"}
    assert cfg.algo_kwargs["gamma"] == 0.95
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump({"eval_every": 123, "sac": {"gamma": 0.9}}))
    cfg = load_train_config("panda", "sac", 1000, path)
    assert cfg.eval_every == 123 and cfg.algo_kwargs["gamma"] == 0.9 and cfg.algo_kwargs["tau"] == 0.05
    assert "goal_distance" not in cfg.preference and "same_episode" not in cfg.feedback
    # a method's own defaults sit between the family's and the caller's
    cfg = load_train_config("panda", "sac", 1000, {"preference": {"max_updates": 7}}, method="preference")
    assert cfg.preference["goal_distance"] and cfg.preference["max_updates"] == 7
    assert cfg.feedback == {"segment_length": 25, "same_episode": 0.5}
    assert load_train_config("panda", "sac", 1000, method="heron").preference == {}
    with pytest.raises(ValueError, match="unknown config keys"):
        load_train_config("gym", "sac", 1000, {"eval_evry": 5})
    with pytest.raises(ValueError, match="algo"):
        load_train_config("gym", "dqn", 1000)
    with pytest.raises(ValueError, match="eval_episodes"):
        load_train_config("gym", "sac", 1000, {"eval_episodes": 0})


@pytest.mark.slow
def test_sac_her_learns_panda_reach(tmp_path):
    result = train(
        "panda:PandaReach-v3",
        total_steps=5000,
        seed=0,
        out_dir=tmp_path,
        config={"video_episodes": 0, "eval_every": 5000},
        progress=False,
    )
    assert result.final_eval["success_rate"] >= 0.8
    assert np.isfinite(result.final_eval["mean_env_return"])


def test_settings_and_feedback_are_checked_before_anything_is_built(tmp_path):
    from robofeedback.feedback.teachers import oracle
    from robofeedback.rewards.preference import PreferenceReward

    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"unknown preference: keys \['hiden'\] for PreferenceReward"):
        train(TASK, reward="preference", feedback=oracle(), out_dir=out, config={"preference": {"hiden": 64}})
    with pytest.raises(ValueError, match=r"unknown feedback: keys \['evry'\]"):
        train(TASK, reward="preference", feedback=oracle(), out_dir=out, config={"feedback": {"evry": 10}})
    with pytest.raises(ValueError, match="reward='heron' learns from feedback= of type HierarchicalJudge"):
        train(TASK, reward="heron", feedback=oracle(), out_dir=out)
    with pytest.raises(ValueError, match="unknown reward method 'pebble'"):
        train(TASK, reward="pebble", feedback=oracle(), out_dir=out)
    with pytest.raises(ValueError, match="does not learn from it"):
        train(TASK, reward=FnReward(negative_distance), feedback=oracle(), out_dir=out)
    model = PreferenceReward(obs_dim=3, act_dim=4)
    with pytest.raises(ValueError, match="PreferenceReward is learned: give feedback="):
        train(TASK, reward=model, out_dir=out)
    assert not out.exists()
