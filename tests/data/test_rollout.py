import numpy as np
import pytest

from robofeedback.data import collect
from robofeedback.envs import make


def test_collect_episodes_keeps_every_step(reach_trajectories):
    for t in reach_trajectories:
        n = len(t)
        assert t.truncated or t.terminated
        assert t.obs["observation"].shape == (n + 1, 6) and t.actions.shape == (n, 3)
        assert t.frames.shape == (n + 1, 48, 64, 3)
        np.testing.assert_allclose(t.agent_path[1:], [info["agent_pos"] for info in t.infos])
        np.testing.assert_allclose(t.env_rewards, [info["env_reward"] for info in t.infos])
        assert set(t.factors) == {"ee_to_target", "ctrl_cost", "progress"}
        assert t.success is not None and t.success.dtype == bool
        assert "frame" not in t.infos[0]


def test_collect_steps_and_policies():
    env = make("metaworld:reach", seed=0, max_episode_steps=30)
    trajectories = collect(env, lambda obs: np.zeros(4), n_steps=70, seed=1)
    assert [len(t) for t in trajectories] == [30, 30, 10]
    assert trajectories[-1].truncated is False and trajectories[0].truncated is True
    assert np.abs(trajectories[0].actions).sum() == 0


def test_collect_same_seed_same_trajectory():
    def run():
        env = make("bullet:HopperBulletEnv-v0", seed=0)
        env.action_space.seed(5)
        return collect(env, None, n_steps=20, seed=3)[0]

    a, b = run(), run()
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.env_rewards, b.env_rewards)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "exactly one"), ({"n_episodes": 1, "n_steps": 2}, "exactly one"), ({"n_steps": 0}, "positive")],
)
def test_collect_bad_budget(kwargs, message):
    env = make("panda:PandaReach-v3", seed=0)
    with pytest.raises(ValueError, match=message):
        collect(env, None, **kwargs)
    with pytest.raises(TypeError, match="policy"):
        collect(env, 42, n_steps=1)
