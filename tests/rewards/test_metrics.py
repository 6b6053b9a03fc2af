"""Reward-model metrics against the env's own reward, on real panda-reach coverage episodes."""

import numpy as np
import pytest

from robofeedback.data.trajectory import flat_obs
from robofeedback.envs import make
from robofeedback.protocols import RewardFunction
from robofeedback.rewards.base import EnvReward
from robofeedback.rewards.metrics import coverage, pearson_distance, reward_metrics, spearman
from robofeedback.rewards.preference import PreferenceReward


class Negated(RewardFunction):
    def reward(self, batch):
        return -EnvReward()(batch)


class StateValue(PreferenceReward):
    """A 'learned' reward of the state alone whose value is a fixed function: for R(s) = f(s), EPIC's canonical
    form is gamma f(s') plus a constant."""

    def rewards_of(self, obs, actions):
        return flat_obs(obs)[:, 0].astype(np.float64)


@pytest.fixture(scope="module")
def episodes():
    env = make("panda:PandaReachDense-v3", max_episode_steps=20)
    try:
        return coverage(env, None, 6, seed=3)
    finally:
        env.close()


def test_the_true_reward_scores_perfectly_and_its_negation_worst(episodes):
    true = reward_metrics(EnvReward(), episodes, segment_length=5, pairs=200)
    assert true["pref_accuracy"] == 1.0 and true["rank_correlation"] == pytest.approx(1.0)
    assert true["epic_distance"] == pytest.approx(0.0, abs=1e-6) and true["epic_canonical"] == "shift"
    assert true["coverage_transitions"] == 120 and 0 < true["pref_pairs"] <= 200
    worst = reward_metrics(Negated(), episodes, segment_length=5, pairs=200)
    assert worst["pref_accuracy"] == 0.0 and worst["epic_distance"] == pytest.approx(1.0, abs=1e-6)


def test_a_model_of_the_state_is_canonicalised_in_full(episodes):
    env = make("panda:PandaReachDense-v3")
    model = StateValue.for_env(env, hidden=8, layers=1)
    env.close()
    metrics = reward_metrics(model, episodes, segment_length=5)
    assert metrics["epic_canonical"] == "full"
    next_first = np.concatenate([flat_obs(e.obs)[1:, 0] for e in episodes])
    true = np.concatenate([e.env_rewards for e in episodes])
    assert metrics["epic_distance"] == pytest.approx(pearson_distance(next_first, true), abs=1e-6)


def test_rank_correlation_handles_ties_and_constants():
    assert spearman([1, 2, 2, 3], [10, 20, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert pearson_distance(np.ones(5), np.arange(5)) == pytest.approx(np.sqrt(0.5))
