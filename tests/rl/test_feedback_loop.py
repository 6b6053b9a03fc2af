import contextlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.feedback.sources import HumanQueue
from robofeedback.feedback.teachers import oracle
from robofeedback.rewards.preference import PreferenceReward, StateEntropyReward, fresh_pair_accuracy
from robofeedback.rl import train
from robofeedback.rl.feedback_loop import find_reward_wrapper, relabel_replay_buffer


def loop_config(**feedback):
    return {
        "eval_every": 1000,
        "eval_episodes": 2,
        "checkpoint_every": 500,
        "video_episodes": 0,
        "sac": {"learning_starts": 100, "batch_size": 32},
        "ppo": {"n_steps": 256, "batch_size": 64, "n_epochs": 1},
        "preference": {"hidden": 32, "layers": 1, "max_epochs": 20},
        "feedback": {
            "every": 500,
            "first_round": 300,
            "segment_length": 10,
            "labels_per_round": 8,
            "budget": 24,
            **feedback,
        },
    }


def train_reach(out_dir, total_steps, config=None, feedback=None, **kwargs):
    """Learn panda reaching (dense reward, episodes to the time limit, small frames) from preferences, with the
    small loop settings above."""
    config = config or loop_config()
    config["env_kwargs"] = {"terminate_on_success": False, "render_size": 48}
    return train(
        "panda:PandaReachDense-v3",
        reward="preference",
        feedback=feedback or oracle(),
        total_steps=total_steps,
        out_dir=out_dir,
        config=config,
        progress=False,
        **kwargs,
    )


def rounds(out):
    return [json.loads(line) for line in (out / "feedback.jsonl").read_text().splitlines()]


def test_loop_end_to_end_with_a_teacher(tmp_path):
    result = train_reach(tmp_path, 1500, config=loop_config(budget=16))
    log = rounds(tmp_path)
    assert [r["steps"] for r in log] == [300, 800, 1300]
    assert [r["labels_requested"] for r in log] == [8, 16, 16]
    assert all(r["train_accuracy"] > 0.5 for r in log[:2]) and "heldout_accuracy" in log[1]
    assert log[2]["new_labels"] == 0  # the budget is spent: the last round has nothing new to learn from
    store = FeedbackStore(tmp_path / "feedback.db")
    labels = store.labels(kind="preference")
    assert len(labels) == 16 and {lb.source for lb in labels} == {"script:oracle"}
    for label in labels[:5]:  # the oracle's labels agree with the stored segments' true returns
        a, b = store.get_segments(label.segment_ids)
        assert label.value == ("a" if a.env_return > b.env_return else "b")
    assert result.feedback["labels"] == 16 and result.feedback["source"] == "script:oracle"
    assert "heldout_accuracy" in result.feedback  # kept from the last round that had new labels
    reward_model = PreferenceReward.load(tmp_path / "checkpoints" / "reward_model.pt")
    buffer = result.model.replay_buffer
    n = buffer.buffer_size if buffer.full else buffer.pos
    assert n > 1000
    # every stored transition carries the final reward model's reward (relabelled, then scored live)
    expected = reward_model.member_rewards(buffer.observations[:n, 0], buffer.actions[:n, 0])
    np.testing.assert_allclose(buffer.rewards[:n, 0], expected.mean(axis=0), rtol=1e-5, atol=1e-6)
    shared = PreferenceReward.from_pretrained(tmp_path / "reward_model")  # the same model, as a folder to share
    obs, act = buffer.observations[:50, 0], buffer.actions[:50, 0]
    np.testing.assert_allclose(shared.rewards_of(obs, act), reward_model.rewards_of(obs, act), rtol=1e-6)
    card = (tmp_path / "reward_model" / "README.md").read_text()
    assert "labels: 16" in card and "script:oracle (16)" in card and "panda:PandaReachDense-v3" in card
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reward"] == "preference" and summary["feedback"]["queries"] == 16
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [(e["steps"], e["labels"]) for e in evals] == [(1000, 16), (1500, 16)]  # labels used at each evaluation


def test_every_feedback_efficiency_option_on_still_learns_on_a_real_env(tmp_path):
    """SURF's pseudo-labels and cropping, RUNE's bonus, bounded retraining, standardised goal inputs and
    same-episode pairs, all on: the run asks what it should, and the learned reward agrees with the Oracle on
    fresh pairs."""
    config = loop_config(budget=64, labels_per_round=16, same_episode=0.5)
    config["preference"] = {
        "hidden": 64,
        "layers": 2,
        "use_actions": False,
        "input_norm": True,
        "goal_features": True,
        "goal_only": True,
        "goal_distance": True,
        "max_updates": 30,
        "pseudo_threshold": 0.9,
        "crop": 2,
        "explore_bonus": 0.05,
        "explore_decay": 1e-3,
    }
    result = train_reach(tmp_path, 1800, config=config)
    log = rounds(tmp_path)
    assert result.feedback["labels"] == 64
    assert all(r["updates"] <= 30 for r in log if "updates" in r)
    assert all(0 <= r["pseudo_labelled"] <= 1 for r in log if "updates" in r)
    model = PreferenceReward.load(tmp_path / "checkpoints" / "reward_model.pt")
    assert model.steps >= 1300 and model.explore_weight == pytest.approx(0.05 * 0.999**model.steps)  # decayed
    env = make("panda:PandaReachDense-v3", seed=3, flatten=True, terminate_on_success=False, render_size=48)
    assert fresh_pair_accuracy(model, env, result.model, 10, n_pairs=300, episodes=10) > 0.6  # chance: 0.5


def test_resuming_keeps_the_run_and_its_labels(tmp_path):
    config = loop_config(budget=40)
    train_reach(tmp_path, 1000, config=config)
    run = json.loads((tmp_path / "checkpoints" / "state.json").read_text())["feedback_run"]
    result = train_reach(tmp_path, 2000, config=config)
    assert json.loads((tmp_path / "checkpoints" / "state.json").read_text())["feedback_run"] == run
    store = FeedbackStore(tmp_path / "feedback.db")
    assert {q.run for q in store.queries()} == {run}
    assert result.feedback["labels"] == len(store.labels(kind="preference")) > 16
    fresh = train_reach(tmp_path, 400, config=config, resume=False)
    assert fresh.feedback["labels"] == 8  # a fresh start is a new run: the old labels stay in the store, unused
    assert len({q.run for q in store.queries()}) == 2


def answer_like_a_person(store, stop, answered):
    while not stop.is_set():
        query = store.lease_query("human:tester", lease_seconds=5)
        if query is None:
            stop.wait(0.05)
            continue
        a, b = store.get_segments(query.segment_ids)
        store.answer_query(query.id, "human:tester", value="a" if a.env_return >= b.env_return else "b")
        answered.append(query.id)


@contextlib.contextmanager
def a_person_answering(store_path):
    """A person (a thread on its own connection to the store) answers every preference query until the block
    ends; yields the ids of the queries answered."""
    stop, answered = threading.Event(), []
    person = threading.Thread(target=answer_like_a_person, args=(FeedbackStore(store_path), stop, answered))
    person.start()
    try:
        yield answered
    finally:
        stop.set()
        person.join()


def test_the_loop_waits_for_people_answering_through_the_store(tmp_path):
    store = FeedbackStore(tmp_path / "shared.db")
    with a_person_answering(tmp_path / "shared.db") as answered:
        result = train(
            "metaworld:reach",
            reward="preference",
            feedback=HumanQueue(wait_seconds=60),
            total_steps=900,
            out_dir=tmp_path / "run",
            store=store,
            config={**loop_config(budget=16), "env_kwargs": {"max_episode_steps": 50, "render_size": 64}},
            progress=False,
        )
    log = rounds(tmp_path / "run")
    assert [r["new_labels"] for r in log] == [8, 8]  # each round waited for its 8 answers
    assert len(answered) == 16 and result.feedback["labels"] == 16
    assert {lb.source for lb in store.labels()} == {"human:tester"}
    videos = sorted((tmp_path / "run" / "segments").glob("*.mp4"))
    assert len(videos) >= 16  # people watch the segments
    assert all(store.get_segment(lb.segment_ids[0]).video_path for lb in store.labels())


def test_frames_are_rendered_only_in_the_episodes_whose_clips_are_kept(tmp_path, monkeypatch):
    """With frame_episodes 3, the 22 episodes of 1100 steps render frames in the 1st, 4th, ... only (8 of
    them), and every queried segment has its video."""
    from robofeedback.envs.panda import PandaEnv

    rendered = []
    render = PandaEnv.render
    monkeypatch.setattr(PandaEnv, "render", lambda self: rendered.append(1) or render(self))
    store = FeedbackStore(tmp_path / "fb.db")
    with a_person_answering(tmp_path / "fb.db"):
        result = train_reach(
            tmp_path / "run",
            1100,
            config=loop_config(budget=16, frame_episodes=3, render_on_query=False),
            feedback=HumanQueue(wait_seconds=60),
            store=store,
        )
    assert result.feedback["labels"] == 16
    # 8 episodes of 51 frames (and the reset after each, rendered before the switch), the app's evaluation video
    # at step 1000 (51 frames); rendering every episode would be 22 x 51 + 51
    assert 8 * 51 + 51 <= len(rendered) <= 8 * 52 + 51 + 3
    segments = [store.get_segment(i) for lb in store.labels() for i in lb.segment_ids]
    assert all(s.video_path for s in segments)
    episodes = {int(s.id.split(":")[0].rsplit("-ep", 1)[1]) for s in segments}
    assert episodes and all((e - 1) % 3 == 0 for e in episodes)


def test_clips_render_on_query_from_recorded_states_and_the_training_envs_never_render(tmp_path, monkeypatch):
    """By default the training envs record their simulator state; only the queried segments are rendered, in an
    env of their own, at clip_size."""
    from robofeedback.envs.base import RobotEnv
    from robofeedback.envs.panda import PandaEnv

    live, replayed = [], []
    render, render_state = PandaEnv.render, RobotEnv.render_state
    monkeypatch.setattr(PandaEnv, "render", lambda self: live.append(self.render_width) or render(self))
    monkeypatch.setattr(RobotEnv, "render_state", lambda self, *a: replayed.append(1) or render_state(self, *a))
    store = FeedbackStore(tmp_path / "fb.db")
    with a_person_answering(tmp_path / "fb.db"):
        result = train_reach(
            tmp_path / "run",
            1100,
            config=loop_config(budget=16, clip_size=[96, 72]),
            feedback=HumanQueue(wait_seconds=60),
            store=store,
        )
    assert result.feedback["labels"] == 16
    segments = {i: store.get_segment(i) for lb in store.labels() for i in lb.segment_ids}
    frames = sum(s.end_step - s.start_step + 1 for s in segments.values())
    assert result.feedback["frames_rendered"] == len(replayed) == frames  # the queried clips, nothing else
    assert live.count(96) == len(replayed)  # at clip_size
    assert len(live) - live.count(96) == 51  # and one evaluation episode for the app: no training env rendered
    assert all(s.video_path and Path(s.video_path).exists() for s in segments.values())


def test_without_waiting_training_goes_on_and_late_answers_are_used(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    config = loop_config(budget=16)
    result = train_reach(tmp_path, 900, config=config, feedback=HumanQueue(wait_seconds=0), store=store)
    assert result.feedback["labels"] == 0  # nobody answered: training went on with the untrained model
    pending = store.queries(status="pending")
    assert len(pending) == 16
    for query in pending:  # people answer later, while no trainer runs
        store.answer_query(query.id, "human:late", value="a")
    result = train_reach(tmp_path, 1400, config=config, feedback=HumanQueue(wait_seconds=0), store=store)
    assert result.feedback["labels"] == 16


class RewardSpy(BaseCallback):
    """Notes which reward function the training env used at each step."""

    def __init__(self):
        super().__init__()
        self.used = {}

    def _on_step(self) -> bool:
        self.used[self.num_timesteps] = type(find_reward_wrapper(self.training_env).reward_fn)
        return True


def test_pebble_pretraining_explores_first(tmp_path):
    spy = RewardSpy()
    train_reach(tmp_path, 1000, config=loop_config(pretrain_steps=700), callbacks=[spy])
    assert rounds(tmp_path)[0]["steps"] == 700  # the first queries come after the exploration phase
    # step 700 is still rewarded by exploration; the round then switches the reward (and relabels step 700 too)
    assert {spy.used[t] for t in range(1, 701)} == {StateEntropyReward}
    assert {spy.used[t] for t in range(701, 1001)} == {PreferenceReward}


def test_on_policy_ppo_learns_from_preferences_too(tmp_path):
    with pytest.warns(UserWarning, match="end early"):  # hoppers fall, and a fall ends the episode
        result = train(
            "bullet:HopperBulletEnv-v0",
            algo="ppo",
            reward="preference",
            feedback=oracle(),
            total_steps=1024,
            out_dir=tmp_path,
            config=loop_config(every=512, first_round=256),
            progress=False,
        )
    assert result.feedback["labels"] == 16
    # rounds fall at rollout ends (every 256 steps), where the rollout buffer is relabelled before the update
    assert [r["relabelled"] for r in rounds(tmp_path)] == [256, 256]


def test_preference_needs_a_source(tmp_path):
    with pytest.raises(ValueError, match="feedback="):
        train("panda:PandaReachDense-v3", reward="preference", total_steps=100, out_dir=tmp_path)
    with pytest.raises(ValueError, match="selection"):
        train_reach(tmp_path, 100, config=loop_config(selection="greedy"))


def test_relabelling_overwrites_every_stored_reward():
    env = make("panda:PandaReach-v3", seed=0, flatten=True)
    agent = SAC("MlpPolicy", env, buffer_size=500, learning_starts=1000, seed=0)
    agent.learn(120)
    buffer = agent.replay_buffer
    model = PreferenceReward.for_env(env, hidden=16, layers=1, scale=3.0)
    assert relabel_replay_buffer(buffer, model) == 120
    expected = 3.0 * model.member_rewards(buffer.observations[:120, 0], buffer.actions[:120, 0]).mean(axis=0)
    np.testing.assert_allclose(buffer.rewards[:120, 0], expected, rtol=1e-6)
    assert (buffer.rewards[120:] == 0).all()
