"""VLM-RM's reward: batched and pickled scoring, what the mini CLIP sees, the wrapper path and the CLI."""

import pickle

import numpy as np
import pytest
import torch

from robofeedback.cli import main
from robofeedback.data.rollout import collect
from robofeedback.envs import make
from robofeedback.envs.experts import expert
from robofeedback.methods.clip.model import ClipReward
from robofeedback.protocols import Transitions
from robofeedback.rl import VecRewardWrapper
from robofeedback.rl.train import make_vec_env

REACH_GOAL = "the gripper touches the green target"


@pytest.fixture(scope="module")
def reach_reward():
    return ClipReward(REACH_GOAL, baseline="the gripper is far from the green target", alpha=0.5)


def frames_batch(frames):
    n = len(frames)
    return Transitions(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros((n, 1)), [{} for _ in range(n)], frames)


def test_bad_settings_are_refused_before_loading_a_model():
    with pytest.raises(ValueError, match="baseline"):
        ClipReward("a goal", alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        ClipReward("a goal", baseline="b", alpha=1.5)
    with pytest.raises(ValueError, match="goal"):
        ClipReward([])
    with pytest.raises(ValueError, match="precision"):
        ClipReward("a goal", precision="int4")


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBOFEEDBACK_ASSETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="scripts/train_mini_clip.py"):
        ClipReward("a goal")


def test_batched_rewards_match_one_at_a_time_and_survive_pickling(reach_reward):
    frames = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    together = reach_reward(frames_batch(frames))
    single = ClipReward(REACH_GOAL, baseline="the gripper is far from the green target", alpha=0.5, batch_size=1)
    one_by_one = np.concatenate([single(frames_batch(frames[i : i + 1])) for i in range(5)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(reach_reward))(frames_batch(frames)), together, atol=1e-6)


def test_mini_clip_ranks_the_reached_target_above_the_start(reach_reward):
    """Scripted reaches from ten starts: the frame with the gripper on the target mostly scores above the first
    (the mini CLIP places the gripper relative to the target in 60% of held-out renders, chance 42%)."""
    env = make("panda:PandaReach-v3", seed=0, render_size=reach_reward.image_size, terminate_on_success=False)
    wins = 0
    for seed in range(10):
        trajectory = collect(env, expert(env), n_steps=15, render=True, seed=seed)[0]
        start, reached = reach_reward(frames_batch(trajectory.frames[[0, -1]]))
        wins += reached > start
    assert wins >= 7


def test_mini_clip_sees_the_drawer_open():
    reward = ClipReward("the drawer is open", baseline="the drawer is closed", alpha=1.0)
    env = make("metaworld:drawer-open", seed=0, render_size=reward.image_size)
    trajectory = collect(env, expert(env), n_steps=120, render=True, seed=0)[0]
    assert trajectory.infos[-1]["success"]
    closed, opened = reward(frames_batch(trajectory.frames[[0, -1]]))
    assert opened > closed


def test_vec_wrapper_scores_clip_on_all_sub_envs_at_the_model_size(reach_reward):
    venv = make_vec_env("panda:PandaReach-v3", 2, seed=0, env_kwargs={"flatten": True, "render_size": 96})
    env = VecRewardWrapper(venv, reach_reward)
    env.reset()
    _, rewards, _, _ = env.step(np.zeros((2, 3)))
    frames = np.stack(venv.env_method("render"))
    np.testing.assert_allclose(rewards, reach_reward(frames_batch(frames)), atol=1e-5)


def test_cli_trains_on_the_clip_reward(tmp_path, capsys, tiny_train_config):
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**tiny_train_config, "video_episodes": 0}))
    args = ["train", "--env", "panda:PandaReach-v3", "--reward", "clip", "--steps", "200", "--no-progress"]
    args += ["--goal", REACH_GOAL, "--baseline", "a robot arm", "--alpha", "0.5", "--clip-every", "2"]
    assert main([*args, "--out", str(tmp_path / "run"), "--config", str(config)]) == 0
    assert "success rate" in capsys.readouterr().out
    assert main(["train", "--env", "panda:PandaReach-v3", "--reward", "clip", "--steps", "10"]) == 2
    assert "--goal" in capsys.readouterr().err


def test_the_cli_puts_clip_on_the_device_it_names():
    from robofeedback.cli import build_parser
    from robofeedback.methods.clip.cli import clip_reward

    base = ["train", "--env", "panda:PandaReach-v3", "--reward", "clip", "--goal", REACH_GOAL]
    assert clip_reward(build_parser().parse_args([*base, "--clip-device", "cpu"])).similarity.clip.device == "cpu"
    default = clip_reward(build_parser().parse_args(base)).similarity.clip.device
    assert default == ("cuda" if torch.cuda.is_available() else "cpu")  # a GPU when there is one
