import numpy as np

from robofeedback.data import RolloutRecorder
from robofeedback.rl import FnReward, VecRewardWrapper
from robofeedback.rl.train import make_vec_env


def zero(obs, action, next_obs, info):
    return 0.0


def recording(spec, n_envs, steps, capacity=10_000, keep_frames=False, **env_kwargs):
    venv = VecRewardWrapper(make_vec_env(spec, n_envs, seed=0, env_kwargs=env_kwargs), FnReward(zero))
    recorder = RolloutRecorder(spec, capacity=capacity, keep_frames=keep_frames)
    venv.attach_recorder(recorder)
    first = venv.reset()
    history = [first]
    for _ in range(steps):
        obs, _, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(n_envs)]))
        history.append((obs, dones, infos))
    return recorder, first, history


def test_episodes_are_recorded_whole_across_auto_resets():
    recorder, first, history = recording("metaworld:reach", 2, 25, max_episode_steps=10)
    finished = list(recorder.finished)
    assert [len(t) for t in finished] == [10, 10, 10, 10]
    assert all(t.truncated and not t.terminated for t in finished)
    np.testing.assert_array_equal(finished[0].obs[0], first[0])
    _, dones, infos = history[10]
    assert dones.all()
    np.testing.assert_array_equal(finished[0].obs[-1], infos[0]["terminal_observation"])
    np.testing.assert_array_equal(finished[2].obs[0], history[10][0][0])  # the next episode starts at the reset
    np.testing.assert_allclose(finished[0].agent_path[1:], [info["agent_pos"] for info in finished[0].infos])
    assert recorder.num_steps == 50 and len(recorder.trajectories()) == 6  # 4 finished, 2 running


def test_capacity_drops_the_oldest_episodes():
    recorder, _, _ = recording("metaworld:reach", 1, 50, capacity=25, max_episode_steps=10)
    assert [len(t) for t in recorder.finished] == [10, 10]
    assert recorder.finished[0].id.endswith("ep4")


def test_segments_fit_inside_episodes_and_short_episodes_count_whole():
    recorder, _, _ = recording("panda:PandaReach-v3", 1, 120, flatten=True)
    rng = np.random.default_rng(0)
    segments = recorder.sample_segments(200, 20, rng)
    assert all(len(s) == 20 or s.end == len(s.trajectory) for s in segments)
    assert all(s.end <= len(s.trajectory) for s in segments)
    long = recorder.sample_segments(5, 60, rng)  # no episode is that long: only ended ones, whole
    assert all(s.start == 0 and (s.trajectory.terminated or s.trajectory.truncated) for s in long)
    other = RolloutRecorder("panda:PandaReach-v3")
    assert other.name != recorder.name  # segment ids stay unique across recorders sharing a store


def test_pairs_from_one_episode_share_its_goal_and_never_repeat_a_segment():
    recorder, _, _ = recording("metaworld:reach", 1, 200, max_episode_steps=50)
    rng = np.random.default_rng(1)
    same = recorder.sample_pairs(300, 10, rng, same_episode=1.0)
    assert len(same) == 300
    assert all(a.trajectory is b.trajectory and a.start != b.start for a, b in same)
    mixed = recorder.sample_pairs(400, 10, rng, same_episode=0.5)
    within = np.mean([a.trajectory is b.trajectory for a, b in mixed])
    assert 0.5 < within < 0.75  # half by design, plus the random pairs that happen to share an episode (1 in 4)
    anywhere = recorder.sample_pairs(400, 10, rng)
    assert all(a.trajectory is not b.trajectory or a.start != b.start for a, b in anywhere)
    assert 0.15 < np.mean([a.trajectory is b.trajectory for a, b in anywhere]) < 0.35


def test_frames_are_kept_for_every_observation_when_asked():
    recorder, _, _ = recording("metaworld:reach", 1, 15, keep_frames=True, max_episode_steps=10, render_size=32)
    episode = recorder.finished[0]
    assert episode.frames.shape == (11, 32, 32, 3)
    assert recorder.trajectories()[-1].frames.shape == (6, 32, 32, 3)
