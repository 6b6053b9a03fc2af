"""Trajectories and segments: saved and loaded whole, sliced as views with ids, their shapes checked."""

import numpy as np
import pytest

from robofeedback.data import Segment, Trajectory, collect
from robofeedback.envs import make


def test_trajectory_npz_round_trip(reach_trajectories, tmp_path):
    t = reach_trajectories[0]
    back = Trajectory.load(t.save(tmp_path / "t.npz"))
    assert back.id == t.id and back.env_spec == "panda:PandaReach-v3" and back.seed == 7
    for key in t.obs:
        np.testing.assert_array_equal(back.obs[key], t.obs[key])
    np.testing.assert_array_equal(back.actions, t.actions)
    np.testing.assert_array_equal(back.env_rewards, t.env_rewards)
    np.testing.assert_array_equal(back.frames, t.frames)
    np.testing.assert_array_equal(back.agent_path, t.agent_path)
    for name, values in t.factors.items():
        np.testing.assert_array_equal(back.factors[name], values)
    assert (back.terminated, back.truncated) == (t.terminated, t.truncated)


def test_trajectory_box_obs_round_trip(tmp_path):
    env = make("metaworld:reach", seed=0, max_episode_steps=5)
    t = collect(env, None, n_episodes=1)[0]
    back = Trajectory.load(t.save(tmp_path / "sub" / "t.npz"))
    np.testing.assert_array_equal(back.obs, t.obs)
    assert back.frames is None
    np.testing.assert_array_equal(back.success, t.success)


def test_segments_are_views_with_ids(reach_trajectories):
    t = reach_trajectories[0]
    seg = t.segment(10, 20)
    assert isinstance(seg, Segment) and len(seg) == 10 and seg.id == f"{t.id}:10-20"
    np.testing.assert_array_equal(seg.actions, t.actions[10:20])
    assert seg.obs["observation"].shape == (11, 6) and seg.frames.shape[0] == 11 and seg.agent_path.shape == (11, 3)
    assert seg.env_return == pytest.approx(t.env_rewards[10:20].sum())
    np.testing.assert_array_equal(seg.factors["progress"], t.factors["progress"][10:20])
    with pytest.raises(ValueError, match="not inside"):
        t.segment(5, len(t) + 1)


def test_trajectory_shapes_are_checked():
    with pytest.raises(ValueError, match="observations"):
        Trajectory(
            obs=np.zeros((3, 2)),
            actions=np.zeros((3, 1)),
            env_rewards=np.zeros(3),
            infos=[{}] * 3,
            agent_path=np.zeros((4, 3)),
        )
