import numpy as np
import pytest
from helpers import negative_distance
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from robofeedback.envs import make
from robofeedback.rl import (
    FnReward,
    RewardFunction,
    RewardWrapper,
    VecRewardWrapper,
)
from robofeedback.rl.train import make_vec_env


class CountingReward(RewardFunction):
    """Records every batch it scores; rewards the brightness of the frame when it needs frames."""

    def __init__(self, needs_frames=False):
        self.needs_frames = needs_frames
        self.batches = []

    def reward(self, batch):
        self.batches.append(batch)
        if self.needs_frames:
            return batch.frames.reshape(len(batch), -1).mean(axis=1) / 255.0
        return np.arange(len(batch), dtype=np.float32)


def test_reward_wrapper_replaces_reward_and_keeps_env_reward():
    env = RewardWrapper(make("panda:PandaReach-v3", seed=0), FnReward(negative_distance))
    env.reset()
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(-info["factors"]["ee_to_target"])
    assert info["env_reward"] in (-1.0, 0.0)


def test_reward_wrapper_renders_only_for_frame_rewards():
    base = make("panda:PandaReach-v3", seed=0, render_size=32)
    renders = []
    original = base.render
    base.render = lambda: renders.append(1) or original()
    env = RewardWrapper(base, CountingReward(needs_frames=False))
    env.reset()
    env.step(env.action_space.sample())
    assert not renders
    frames_fn = CountingReward(needs_frames=True)
    env = RewardWrapper(base, frames_fn)
    env.reset()
    _, reward, _, _, _ = env.step(env.action_space.sample())
    assert renders and frames_fn.batches[-1].frames.shape == (1, 32, 32, 3) and 0 < reward < 1


def test_vec_wrapper_one_batched_call_per_step():
    venv = make_vec_env("panda:PandaReach-v3", n_envs=3, seed=0, env_kwargs={"flatten": True})
    fn = CountingReward()
    env = VecRewardWrapper(venv, fn)
    obs = env.reset()
    for _ in range(4):
        actions = np.stack([env.action_space.sample() for _ in range(3)])
        next_obs, rewards, dones, infos = env.step(actions)
        batch = fn.batches[-1]
        assert len(batch) == 3 and batch.frames is None
        np.testing.assert_array_equal(batch.obs, obs)
        np.testing.assert_array_equal(batch.action, actions)
        np.testing.assert_allclose(rewards, [0, 1, 2])
        assert all("env_reward" in info and "frame" not in info for info in infos)
        obs = next_obs
    assert len(fn.batches) == 4


def test_vec_wrapper_uses_terminal_observations_and_reports_model_returns():
    venv = make_vec_env("metaworld:reach", n_envs=2, seed=0, env_kwargs={"max_episode_steps": 5})
    fn = CountingReward()
    env = VecRewardWrapper(venv, fn)
    env.reset()
    for _ in range(5):
        obs, _, dones, infos = env.step(np.zeros((2, 4)))
    assert dones.all()
    batch = fn.batches[-1]
    for i in range(2):
        np.testing.assert_array_equal(batch.next_obs[i], infos[i]["terminal_observation"])
        assert not np.array_equal(batch.next_obs[i], obs[i])
    assert [info["episode_model_return"] for info in infos] == [0.0, 5.0]


def test_vec_wrapper_renders_frames_only_when_asked():
    venv = make_vec_env("bullet:HopperBulletEnv-v0", n_envs=2, seed=0, env_kwargs={"render_size": 40})
    fn = CountingReward(needs_frames=True)
    env = VecRewardWrapper(venv, fn)
    env.reset()
    _, rewards, _, infos = env.step(np.zeros((2, 3)))
    assert fn.batches[-1].frames.shape == (2, 40, 40, 3)
    assert all("frame" not in info for info in infos) and (rewards > 0).all()
    env.set_reward_fn(CountingReward(needs_frames=False))
    assert venv.get_attr("_capture_frames") == [False, False]


@pytest.mark.slow
def test_vec_wrapper_over_subprocesses():
    venv = make_vec_env("panda:PandaReach-v3", n_envs=2, seed=0, env_kwargs={"flatten": True}, vec_env="subproc")
    assert isinstance(venv, SubprocVecEnv)
    env = VecRewardWrapper(venv, FnReward(negative_distance))
    env.reset()
    _, rewards, _, infos = env.step(np.zeros((2, 3)))
    np.testing.assert_allclose(rewards, [-info["factors"]["ee_to_target"] for info in infos], rtol=1e-6)
    env.close()


def test_vec_wrapper_needs_robofeedback_envs_for_frames():
    import gymnasium as gym

    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    with pytest.raises(TypeError, match="robofeedback.envs.make"):
        VecRewardWrapper(venv, CountingReward(needs_frames=True))


def test_vec_wrapper_scores_every_k_steps_and_holds_the_score():
    venv = make_vec_env("metaworld:reach", n_envs=2, seed=0, env_kwargs={"max_episode_steps": 7, "render_size": 32})
    fn = CountingReward(needs_frames=True)
    fn.reward_every = 3
    env = VecRewardWrapper(venv, fn)
    env.reset()
    rewards = []
    for _ in range(8):
        _, r, _, _ = env.step(np.zeros((2, 4)))
        rewards.append(r)
    assert len(fn.batches) == 4  # episode steps 1, 4, 7, then step 1 of the next episode
    assert all(len(batch) == 2 and batch.frames.shape == (2, 32, 32, 3) for batch in fn.batches)
    np.testing.assert_array_equal(rewards[1], rewards[0])
    np.testing.assert_array_equal(rewards[2], rewards[0])
    assert not np.array_equal(rewards[3], rewards[0])


def test_vec_wrapper_scores_only_episode_ends_when_asked():
    venv = make_vec_env("metaworld:reach", n_envs=2, seed=0, env_kwargs={"max_episode_steps": 5, "render_size": 32})
    fn = CountingReward(needs_frames=True)
    fn.reward_at_episode_end = True
    env = VecRewardWrapper(venv, fn)
    env.reset()
    rewards = [env.step(np.zeros((2, 4)))[1] for _ in range(5)]
    assert len(fn.batches) == 1 and len(fn.batches[0]) == 2
    assert not np.any(rewards[:4]) and (rewards[4] > 0).all()


def test_single_env_wrapper_renders_only_the_scored_steps():
    fn = CountingReward(needs_frames=True)
    fn.reward_every = 2
    env = RewardWrapper(make("bullet:HopperBulletEnv-v0", seed=0, render_size=24), fn)
    env.reset()
    rewards = [env.step(np.zeros(3))[1] for _ in range(4)]
    assert len(fn.batches) == 2 and rewards[0] == rewards[1] and rewards[2] == rewards[3] > 0
