import imageio.v3 as iio
import numpy as np
import pytest

from robofeedback.data import Segment, Trajectory, VideoError, collect, read_video, video_codec, write_video
from robofeedback.envs import make


@pytest.fixture(scope="module")
def reach_trajectories():
    env = make("panda:PandaReach-v3", seed=0, render_size=(64, 48))
    return collect(env, None, n_episodes=2, render=True, seed=7)


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


def test_video_is_h264_and_reads_back(reach_trajectories, tmp_path):
    frames = np.concatenate([t.frames for t in reach_trajectories])
    path = write_video(frames, tmp_path / "v.mp4", fps=20)
    assert video_codec(path) == "h264"
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 6  # lossy, but the same pictures


def test_video_odd_sizes_trimming_and_resampling(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, size=(50, 1, 1, 3), dtype=np.uint8), 15, axis=1)
    frames = np.repeat(frames, 21, axis=2)  # 15 x 21: both odd
    path = write_video(frames, tmp_path / "odd.mp4", fps=25)
    assert read_video(path).shape == (50, 16, 22, 3)
    assert len(read_video(path, fps=5)) == 10
    assert len(read_video(path, start=0.4, end=1.2)) == 20


def test_frame_folders_read_in_name_order(tmp_path):
    for i, value in enumerate([30, 90, 150]):
        iio.imwrite(tmp_path / f"{i:02d}.png", np.full((8, 8, 3), value, dtype=np.uint8))
    frames = read_video(tmp_path)
    assert frames.shape == (3, 8, 8, 3) and list(frames[:, 0, 0, 0]) == [30, 90, 150]
    with pytest.raises(VideoError, match="folder"):
        read_video(tmp_path, fps=2)


def test_bad_videos_give_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="no video at"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="could not read"):
        read_video(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        read_video(tmp_path / "empty")
    with pytest.raises(VideoError, match="non-empty"):
        write_video(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "x.mp4")
    with pytest.raises(VideoError, match="uint8"):
        write_video(np.zeros((2, 8, 8, 3)), tmp_path / "x.mp4")
    with pytest.raises(VideoError, match=".mp4"):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "x.avi")
