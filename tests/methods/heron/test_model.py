import json

import numpy as np
import pytest
import torch

from robofeedback.cli import main
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.methods.heron.model import HeuristicReward, HierarchicalJudge, factor_sum_teacher
from robofeedback.protocols import Transitions
from robofeedback.rewards.preference import PreferenceData, PreferenceReward
from robofeedback.rl import train


class Item:
    """A segment-like item with given per-step factor values."""

    def __init__(self, steps=1, **factors):
        self.factors = {k: np.full(steps, v, dtype=np.float64) / steps for k, v in factors.items()}
        self.env_rewards = np.zeros(steps)
        self.steps = steps

    def __len__(self):
        return self.steps


JUDGE = HierarchicalJudge(["distance", "smooth", "energy"], signs=[-1, 1, -1], sigma=0.0)


def test_a_clear_win_at_the_first_level():
    delta = np.zeros(3)
    assert JUDGE.compare(np.array([-1.0, 0, 0]), np.array([-2.0, 5, 5]), delta) == ("a", 1)
    assert JUDGE.compare(np.array([-3.0, 9, 9]), np.array([-2.0, 0, 0]), delta) == ("b", 1)


def test_a_tie_within_the_margin_goes_to_the_next_level():
    delta = np.array([0.5, 0.1, 0.1])
    assert JUDGE.compare(np.array([-1.0, 0.0, 0]), np.array([-1.3, 1.0, 0]), delta) == ("b", 2)
    assert JUDGE.compare(np.array([-1.0, 0.0, -1]), np.array([-1.3, 0.05, -2]), delta) == ("a", 3)


def test_a_full_tie_is_dropped_or_equal():
    delta = np.array([0.5, 0.5, 0.5])
    z = np.array([-1.0, 0.0, -1.0])
    assert JUDGE.compare(z, z + 0.2, delta) == ("skip", 0)
    equal = HierarchicalJudge(["distance", "smooth", "energy"], signs=[-1, 1, -1], ties="equal")
    assert equal.compare(z, z + 0.2, delta) == ("equal", 0)


def test_a_cost_factor_prefers_the_lower_value():
    judge = HierarchicalJudge(["energy"], signs=[-1], sigma=0.0)
    ((value, level),) = judge.label_many([(Item(energy=1.0), Item(energy=3.0))])
    assert (value, level) == ("a", 1)
    judge = HierarchicalJudge(["energy"], signs=[1], sigma=0.0)
    assert judge.label_many([(Item(energy=1.0), Item(energy=3.0))]) == [("b", 1)]


def test_margins_scale_with_the_std_of_the_batch():
    judge = HierarchicalJudge(["distance", "smooth"], signs=[-1, 1], sigma=[0.5, 1.0])
    narrow = [Item(distance=d, smooth=s) for d, s in [(1.0, 0.0), (1.2, 1.0), (1.1, 0.5)]]
    wide = [Item(distance=d, smooth=s) for d, s in [(1.0, 0.0), (1.2, 1.0), (5.0, 0.5)]]
    z = np.array([[-(i.factors["distance"].sum()), i.factors["smooth"].sum()] for i in wide])
    assert np.allclose(judge.margins(wide), [0.5, 1.0] * z.std(axis=0))
    # the same first-level difference (0.2) decides the pair in a narrow batch, not in a wide one
    assert judge.label_many([(narrow[0], narrow[1])]) == [("a", 1)]
    judge_narrow = judge.label_many([(narrow[0], narrow[1]), (narrow[2], narrow[2])])
    judge_wide = judge.label_many([(wide[0], wide[1]), (wide[2], wide[2])])
    assert judge_narrow[0] == ("a", 1) and judge_wide[0] == ("b", 2)  # the next level, smoothness, decides


def test_segments_sum_their_factors_and_transitions_need_single_steps():
    judge = HierarchicalJudge(["distance"], signs=[-1], sigma=0.0, granularity="segment")
    assert judge.values(Item(steps=4, distance=2.0)) == pytest.approx([-2.0])
    assert judge.segment_length is None
    single = HierarchicalJudge(["distance"], signs=[-1])  # single transitions by default
    assert single.segment_length == 1
    with pytest.raises(ValueError, match="single steps"):
        single.values(Item(steps=4, distance=2.0))


def test_bad_rankings_are_clear_errors():
    with pytest.raises(ValueError, match="distinct factor names"):
        HierarchicalJudge(["a", "a"])
    with pytest.raises(ValueError, match="one value per ranked factor"):
        HierarchicalJudge(["a", "b"], sigma=[1.0])
    with pytest.raises(ValueError, match=r"\+1 or -1"):
        HierarchicalJudge(["a"], signs=[2])
    env = make("bullet:HopperBulletEnv-v0", seed=0, render_size=32)
    with pytest.raises(ValueError, match=r"names \['speed'\].*its factors are"):
        HierarchicalJudge(["progress", "speed"]).attach(env)
    judge = HierarchicalJudge(["progress", "electricity"])
    judge.attach(env)
    assert list(judge.signs) == [1, -1]  # the env's own signs


def test_the_ranking_can_come_from_the_store(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    store.set_factor_ranking(
        "bullet:AntBulletEnv-v0",
        ["progress", "alive", "joints_at_limit"],
        source="human:ann",
        signs={"progress": 1, "alive": 1, "joints_at_limit": -1},
        margins={"progress": 1.0, "alive": 1.0, "joints_at_limit": 0.5},
    )
    judge = HierarchicalJudge.from_store(store, "bullet:AntBulletEnv-v0", granularity="segment")
    assert judge.order == ["progress", "alive", "joints_at_limit"]
    assert list(judge.signs) == [1, 1, -1] and list(judge.sigma) == [1.0, 1.0, 0.5]
    assert judge.granularity == "segment"
    with pytest.raises(ValueError, match="no factor ranking"):
        HierarchicalJudge.from_store(store, "bullet:HopperBulletEnv-v0")


def test_labels_go_to_the_store_with_the_deciding_level(tmp_path):
    from robofeedback.data.rollout import collect

    env = make("bullet:HopperBulletEnv-v0", seed=0, render_size=32)
    trajectories = collect(env, None, n_steps=60, seed=0)  # random hoppers fall within a few dozen steps
    segments = [t.segment(i, i + 3) for t in trajectories for i in range(0, len(t) - 2, 3)][:8]
    store = FeedbackStore(tmp_path / "f.db")
    store.add_segments(segments, run="r")
    queries = [
        store.add_query("preference", [a.id, b.id], run="r") for a, b in zip(segments[::2], segments[1::2], strict=True)
    ]
    judge = HierarchicalJudge(["alive", "progress", "electricity"], sigma=[0.5, 0.5, 0.5], granularity="segment")
    judge.attach(env)
    judge.answer(store, [store.get_query(q) for q in queries], {s.id: s for s in segments})
    labels = store.labels(kind="preference", run="r")
    assert len(labels) == 4 and {lb.source for lb in labels} == {"script:heron"}
    for label in labels:
        level = label.payload["level"]
        assert (label.value == "skip") == (level is None)
        assert label.note == (f"decided at level {level} ({judge.order[level - 1]})" if level else "tie at every level")
    assert sum(judge.decided.values()) == 4
    assert sum(judge.level_fractions().values()) == pytest.approx(1.0)


def test_the_heuristic_and_the_factor_sum_baselines():
    reward = HeuristicReward(["distance", "smooth", "energy"], [-1, -1, -1], beta=0.5)
    infos = [{"factors": {"distance": 1.0, "smooth": 2.0, "energy": 4.0}}]
    batch = Transitions(np.zeros((1, 2)), np.zeros((1, 1)), np.zeros((1, 2)), infos)
    assert reward(batch) == pytest.approx([-1.0 - 0.5 * 2.0 - 0.25 * 4.0])
    teacher = factor_sum_teacher(["alive", "electricity"], [1, -1])
    assert teacher.source == "script:factor-sum"
    assert teacher.label(Item(alive=1.0, electricity=0.5), Item(alive=1.0, electricity=0.2)) == "b"


def test_level_scaling_and_reward_normalisation():
    rng = np.random.default_rng(0)

    def segments(n):
        return [type("S", (), {"obs": rng.normal(size=(6, 3)), "actions": rng.normal(size=(5, 1))})() for _ in range(n)]

    pairs = list(zip(segments(200), segments(200), strict=True))
    truth = lambda s: s.obs[:5, 0].sum()  # noqa: E731
    values = ["a" if truth(a) > truth(b) else "b" for a, b in pairs]
    levels = [1 if abs(truth(a) - truth(b)) > 2 else 2 for a, b in pairs]
    data = PreferenceData.from_pairs(pairs, values, levels)
    assert set(data.level) == {1, 2}
    model = PreferenceReward(
        3, 1, hidden=16, layers=1, ensemble=1, level_scale=4.0, normalize=True, use_actions=False, lr=1e-2
    )
    *_, multiplier = model._tensors(data, np.arange(len(data)))
    assert torch.equal(multiplier, torch.tensor([1.0 if lv == 1 else 4.0 for lv in levels]))
    model.fit(data, max_epochs=100)
    states = np.concatenate([data.obs_a[data.mask_a > 0], data.obs_b[data.mask_b > 0]])
    rewards = model.rewards_of(states, np.zeros((len(states), 1)))
    assert abs(rewards.mean()) < 1e-4 and rewards.std() == pytest.approx(1.0, abs=1e-3)
    assert model.accuracy(data) > 0.8
    model.config["offset"] = 1.0  # a constant after normalisation: the same comparisons, every step worth more
    shifted = model.rewards_of(states, np.zeros((len(states), 1)))
    np.testing.assert_allclose(shifted, rewards + 1.0, rtol=0, atol=1e-6)


def test_ppo_rollout_buffer_is_relabelled_and_its_advantages_recomputed(tmp_path):
    """After a round, the rollout's rewards are the retrained model's (plus SB3's time-limit bootstrap) and the
    advantages are those GAE gives for them, not those of the rewards the agent was given."""
    from stable_baselines3.common.callbacks import BaseCallback

    from robofeedback.rl.feedback_loop import rollout_rewards

    class Spy(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            self.seen.append((buffer.rewards.copy(), buffer.advantages.copy()))

    spy = Spy()
    judge = HierarchicalJudge(["alive", "progress"], sigma=0.5)
    config = {
        "eval_every": 10_000,
        "eval_episodes": 1,
        "video_episodes": 0,
        "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 1},
        "preference": {"hidden": 16, "max_epochs": 5},
        "feedback": {"labels_per_round": 32, "segment_length": 5, "first_round": 128},
    }
    with pytest.warns(UserWarning, match="end early"):
        result = train(
            "bullet:HopperBulletEnv-v0",
            algo="ppo",
            reward="heron",
            feedback=judge,
            total_steps=384,
            out_dir=tmp_path,
            config=config,
            progress=False,
            callbacks=[spy],
        )
    rounds = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rounds] == [128, 256, 384] and all(r["relabelled"] == 128 for r in rounds)
    assert set(result.feedback["levels"]) == {"level 1 (alive)", "level 2 (progress)", "tie at every level"}
    buffer = result.model.rollout_buffer
    model = PreferenceReward.load(tmp_path / "checkpoints" / "reward_model.pt")
    expected = rollout_rewards(buffer, model, result.model.action_space)
    terminal_bootstrap = buffer.rewards - expected
    assert np.count_nonzero(np.abs(terminal_bootstrap) > 1e-5) <= 2  # only time-limit truncations differ
    rewards_seen, advantages_seen = spy.seen[-1]  # after the loop's round (the loop runs first)
    assert np.allclose(rewards_seen, buffer.rewards) and np.allclose(advantages_seen, buffer.advantages)
    given = buffer.rewards.copy()
    buffer.rewards[:] = given + 1.0  # advantages follow the rewards they are computed from
    buffer.compute_returns_and_advantage(torch.zeros(1), np.zeros(1))
    assert not np.allclose(buffer.advantages, advantages_seen)


def test_cli_heron(tmp_path, capsys):
    argv = ["train", "--env", "bullet:HopperBulletEnv-v0", "--algo", "ppo", "--reward", "heron", "--no-progress"]
    assert main([*argv, "--steps", "64", "--out", str(tmp_path / "a")]) == 2
    assert "needs --factors" in capsys.readouterr().err
    assert main([*argv, "--steps", "64", "--factors", "alive,speed", "--out", str(tmp_path / "b")]) == 2
    assert "speed" in capsys.readouterr().err
    assert main([*argv, "--factors", "alive", "--sigma", "x", "--out", str(tmp_path / "c")]) == 2
    assert "comma-separated numbers" in capsys.readouterr().err
    config = tmp_path / "small.yaml"
    small = {"eval_every": 512, "eval_episodes": 1, "video_episodes": 0, "ppo": {"n_steps": 128}}
    config.write_text(json.dumps({**small, "preference": {"hidden": 32}, "feedback": {"labels_per_round": 32}}))
    with pytest.warns(UserWarning, match="end early"):
        code = main(
            [
                *argv,
                "--steps",
                "256",
                "--factors",
                "alive,progress,electricity",
                "--sigma",
                "1,1,0.5",
                "--config",
                str(config),
                "--level-scale",
                "2",
                "--normalize-reward",
                "--reward-offset",
                "0.5",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert code == 0
    out = capsys.readouterr().out
    assert "decided at: level 1 (alive)" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["preference"]["level_scale"] == 2.0 and summary["config"]["preference"]["normalize"]
    assert summary["config"]["preference"]["offset"] == 0.5
    feedback = summary["config"]["feedback"]
    assert feedback["every"] == 128 and feedback["max_epochs"] == 5  # HERON retrains every rollout under PPO
    (status,) = FeedbackStore(tmp_path / "run" / "feedback.db").run_statuses().values()
    assert sum(status["levels"].values()) == pytest.approx(1.0, abs=0.01)  # for the app's Training tab
