"""Trajectories as Minari datasets, on real files: written from real envs, loaded with Minari, read back, queued."""

import json
import warnings
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from robofeedback.cli import main
from robofeedback.data import FeedbackStore, collect
from robofeedback.data.minari_io import queue_minari, read_minari, recover_env, write_minari
from robofeedback.envs import make
from robofeedback.feedback.teachers import oracle
from robofeedback.rl import train


@pytest.fixture(autouse=True)
def datasets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


@pytest.fixture(scope="module")
def pendulum():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pendulum has no agent position: NaN rows, as the env warns
        env = make("Pendulum-v1", seed=0, max_episode_steps=6)
    return env, collect(env, None, n_episodes=2, seed=3)


@pytest.fixture(scope="module")
def reach():
    env = make("panda:PandaReach-v3", seed=0, render_size=32, max_episode_steps=8)
    return env, collect(env, None, n_episodes=2, seed=5, states=True)


def assert_same(a, b):
    """Every array and field of two trajectories equal (frames apart, which Minari datasets do not hold)."""
    if isinstance(a.obs, dict):
        assert set(a.obs) == set(b.obs)
        for key in a.obs:
            np.testing.assert_array_equal(a.obs[key], b.obs[key])
    else:
        np.testing.assert_array_equal(a.obs, b.obs)
    for name in ("actions", "env_rewards", "agent_path", "sim_states"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert set(a.factors) == set(b.factors)
    for name in a.factors:
        np.testing.assert_array_equal(a.factors[name], b.factors[name])
    np.testing.assert_array_equal(a.success, b.success)
    assert (a.terminated, a.truncated, a.env_spec, a.seed, a.id) == (
        b.terminated,
        b.truncated,
        b.env_spec,
        b.seed,
        b.id,
    )


def test_gym_env_dataset_loads_with_minari_and_recovers_its_env(pendulum):
    env, trajectories = pendulum
    write_minari(trajectories, "robofeedback/pendulum/random-v0", env=env)
    dataset = minari.load_dataset("robofeedback/pendulum/random-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 12
    for episode, trajectory in zip(dataset.iterate_episodes(), trajectories, strict=True):
        np.testing.assert_array_equal(episode.observations, trajectory.obs)
        np.testing.assert_array_equal(episode.actions, trajectory.actions)
        np.testing.assert_array_equal(episode.rewards, trajectory.env_rewards)
        assert episode.truncations[-1] and not episode.terminations.any()
        costs = [row["ctrl_cost"] for row in episode.infos["factors"][1:]]  # Minari returns nested infos row by row
        np.testing.assert_array_equal(costs, trajectory.factors["ctrl_cost"])
    recovered = dataset.recover_environment()
    assert recovered.spec.id == "Pendulum-v1" and recovered.observation_space == env.observation_space
    recovered.close()
    for a, b in zip(trajectories, read_minari("robofeedback/pendulum/random-v0"), strict=True):
        assert_same(a, b)
        assert np.isnan(b.agent_path).all()


def test_panda_dataset_round_trip_and_recover_env(reach, datasets_root):
    env, trajectories = reach
    write_minari(trajectories, "robofeedback/reach/random-v0", env=env)
    dataset = minari.load_dataset("robofeedback/reach/random-v0")
    recorded = dataset.storage.metadata["robofeedback"]
    assert recorded["env_spec"] == "panda:PandaReach-v3" and recorded["make_kwargs"] == {"max_episode_steps": 8}
    assert "panda-gym" in recorded["packages"] and recorded["version"]
    assert any(r.startswith("panda-gym==") for r in dataset.storage.metadata["requirements"])
    assert "recover_env" in dataset.storage.metadata["description"]
    for episode, trajectory in zip(dataset.iterate_episodes(), trajectories, strict=True):
        for key in trajectory.obs:
            np.testing.assert_array_equal(episode.observations[key], trajectory.obs[key])
        np.testing.assert_array_equal(episode.infos["sim_state"], trajectory.sim_states)
        np.testing.assert_array_equal(episode.infos["success"][1:], trajectory.success)
    with pytest.raises(ValueError, match="cannot be recovered"):
        dataset.recover_environment()  # Minari's own recovery cannot apply to a robofeedback spec
    back = read_minari(datasets_root / "robofeedback" / "reach" / "random-v0", episodes=[1])
    assert len(back) == 1
    assert_same(trajectories[1], back[0])
    made = recover_env(dataset, seed=0, render_size=32)
    made.reset(seed=0)
    first = made.render_state(back[0].sim_states[2], back[0].agent_path[2])
    env.reset(seed=0)
    np.testing.assert_array_equal(first, env.render_state(trajectories[1].sim_states[2], trajectories[1].agent_path[2]))
    made.close()


def test_foreign_dataset_reads_as_trajectories():
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    rng = np.random.default_rng(0)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=10 + i,
            observations=rng.uniform(-1, 1, (n + 1, 3)).astype(np.float32),
            actions=rng.integers(0, 2, n),
            rewards=list(rng.normal(size=n)),
            terminations=[False] * (n - 1) + [True],
            truncations=[False] * n,
            infos={"progress": list(np.linspace(0, 1, n + 1)), "pos": rng.normal(size=(n + 1, 2))},
        )
        for i, n in enumerate((4, 6))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari asks for an author, an env spec, ...
        made = minari.create_dataset_from_buffers(
            "someone/toy/expert-v1",
            buffers,
            observation_space=obs_space,
            action_space=gym.spaces.Discrete(2),
            data_format="arrow",
        )
    trajectories = read_minari("someone/toy/expert-v1")
    assert [len(t) for t in trajectories] == [4, 6]
    for buffer, t in zip(buffers, trajectories, strict=True):
        np.testing.assert_array_equal(t.obs, buffer.observations)
        np.testing.assert_array_equal(t.actions, buffer.actions)
        np.testing.assert_allclose(t.env_rewards, buffer.rewards)
        assert t.terminated and not t.truncated and t.seed == buffer.seed and t.env_spec == ""
        assert np.isnan(t.agent_path).all() and t.agent_path.shape == (len(t) + 1, 3) and t.sim_states is None
        assert [info["progress"] for info in t.infos] == list(buffer.infos["progress"][1:])
        np.testing.assert_array_equal(t.infos[-1]["pos"], buffer.infos["pos"][-1])
    assert trajectories[1].id == "someone/toy/expert-v1/ep1"
    with pytest.raises(ValueError, match="records no env"):
        recover_env(made)
    with pytest.raises(ValueError, match="no episode 5"):
        read_minari(made, episodes=[5])


def test_errors_name_what_is_wrong(pendulum):
    with pytest.raises(FileNotFoundError, match="MINARI_DATASETS_PATH"):
        read_minari("nobody/nothing-v0")
    with pytest.raises(ValueError, match="no trajectories"):
        write_minari([], "robofeedback/empty-v0")
    _, trajectories = pendulum
    other = collect(make("panda:PandaReach-v3", seed=0, max_episode_steps=2), None, n_episodes=1)
    with pytest.raises(ValueError, match="one env"):
        write_minari([*trajectories, *other], "robofeedback/mixed-v0")
    with pytest.raises(ValueError, match="Malformed dataset ID"):
        write_minari(trajectories, "robofeedback/no version")
    write_minari(trajectories, "robofeedback/pendulum/twice-v0")
    with pytest.raises(ValueError, match="already exists"):
        write_minari(trajectories, "robofeedback/pendulum/twice-v0")
    assert main(["rollout", "--env", "Pendulum-v1", "--minari-root", "somewhere"]) == 2


def test_queue_minari_puts_segments_and_queries_into_the_store(reach, tmp_path):
    env, trajectories = reach
    write_minari(trajectories, "robofeedback/reach/queue-v0", env=env)
    store = FeedbackStore(tmp_path / "feedback.db")
    queries = queue_minari(
        store, "robofeedback/reach/queue-v0", run="shared", segment_length=4, pairs=3, video_dir=tmp_path / "videos"
    )
    assert len(queries) == 3 and len(store.queries(run="shared", kind="preference", status="pending")) == 3
    ids = {i for q in queries for i in store.get_query(q).segment_ids}
    segments = store.get_segments(sorted(ids))
    for segment in segments:
        assert len(segment) == 4 and segment.env_spec == "panda:PandaReach-v3"
        assert Path(segment.video_path).is_file() and Path(segment.video_path).parent == tmp_path / "videos"
        assert segment.meta["minari_dataset"] == "robofeedback/reach/queue-v0"
    assert store.run_statuses()["shared"]["env"] == "panda:PandaReach-v3"


def test_queue_minari_without_states_needs_no_videos(pendulum, tmp_path):
    env, trajectories = pendulum
    write_minari(trajectories, "robofeedback/pendulum/queue-v0", env=env)
    store = FeedbackStore(tmp_path / "feedback.db")
    with pytest.raises(ValueError, match="neither frames nor simulator states"):
        queue_minari(store, "robofeedback/pendulum/queue-v0", segment_length=3, pairs=2, video_dir=tmp_path / "v")
    assert queue_minari(store, "robofeedback/pendulum/queue-v0", segment_length=3, pairs=2)
    assert len(store.queries(run="minari")) == 2


def test_rollout_cli_writes_a_minari_dataset(tmp_path, capsys):
    root = tmp_path / "datasets"
    code = main(
        [
            "rollout",
            "--env",
            "panda:PandaReach-v3",
            "--steps",
            "5",
            "--out",
            str(tmp_path / "out"),
            "--minari",
            "robofeedback/reach/cli-v0",
            "--minari-root",
            str(root),
        ]
    )
    assert code == 0
    assert "recover_env" in capsys.readouterr().out
    assert not list(tmp_path.glob("out/traj_*.npz"))
    (trajectory,) = read_minari(root / "robofeedback" / "reach" / "cli-v0")
    assert len(trajectory) == 5 and trajectory.sim_states is not None and trajectory.seed == 0


def test_minari_command_queues_and_describes(reach, tmp_path, capsys):
    env, trajectories = reach
    write_minari(trajectories, "robofeedback/reach/command-v0", env=env)
    assert main(["minari", "info", "robofeedback/reach/command-v0"]) == 0
    assert json.loads(capsys.readouterr().out)["env_spec"] == "panda:PandaReach-v3"
    store = tmp_path / "feedback.db"
    assert main(["minari", "queue", "robofeedback/reach/command-v0", "--store", str(store), "--pairs", "2"]) == 0
    assert len(FeedbackStore(store).queries(run="minari")) == 2


def test_feedback_loop_writes_its_kept_episodes_on_request(tmp_path):
    config = {
        "eval_every": 10_000,
        "eval_episodes": 1,
        "checkpoint_every": 10_000,
        "video_episodes": 0,
        "sac": {"learning_starts": 100, "batch_size": 16},
        "preference": {"hidden": 16, "layers": 1, "max_epochs": 2},
        "feedback": {"first_round": 150, "segment_length": 10, "labels_per_round": 4, "budget": 4},
        "env_kwargs": {"terminate_on_success": False},
    }
    config["feedback"]["minari_dataset"] = "robofeedback/reach/kept-v0"
    train(
        "panda:PandaReachDense-v3",
        reward="preference",
        feedback=oracle(),
        total_steps=200,
        out_dir=tmp_path,
        config=config,
        progress=False,
    )
    trajectories = read_minari("robofeedback/reach/kept-v0")
    assert [len(t) for t in trajectories] == [50, 50, 50, 50]
    assert all(t.truncated and t.env_spec == "panda:PandaReachDense-v3" for t in trajectories)
    made = recover_env("robofeedback/reach/kept-v0")
    assert made.make_kwargs["flatten"] and made.observation_space.shape == trajectories[0].obs.shape[1:]
    made.close()
