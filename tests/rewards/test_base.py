"""The env's reward and plain functions as reward functions, and the reward contract's errors."""

import pickle

import numpy as np
import pytest
from helpers import negative_distance

from robofeedback.protocols import Transitions
from robofeedback.rewards.base import EnvReward, FnReward, make_reward


def test_env_reward_and_fn_reward():
    batch = Transitions(
        obs=np.zeros((2, 3)),
        action=np.zeros((2, 1)),
        next_obs=np.ones((2, 3)),
        info=[
            {"env_reward": 1.5, "factors": {"ee_to_target": 0.2}},
            {"env_reward": -2.0, "factors": {"ee_to_target": 0.4}},
        ],
    )
    np.testing.assert_allclose(EnvReward()(batch), [1.5, -2.0])
    np.testing.assert_allclose(FnReward(negative_distance)(batch), [-0.2, -0.4])
    np.testing.assert_allclose(FnReward(lambda b: b.next_obs.sum(axis=1), batched=True)(batch), [3.0, 3.0])
    assert EnvReward()(batch).dtype == np.float32
    assert pickle.loads(pickle.dumps(FnReward(negative_distance)))(batch)[0] == pytest.approx(-0.2)


def test_reward_contract_errors():
    batch = Transitions(obs=np.zeros((2, 1)), action=np.zeros((2, 1)), next_obs=np.zeros((2, 1)), info=[{}, {}])
    with pytest.raises(KeyError, match="env_reward"):
        EnvReward()(batch)
    with pytest.raises(ValueError, match="returned 1 rewards for 2"):
        FnReward(lambda b: [0.0], batched=True)(batch)
    with pytest.raises(ValueError, match="unknown reward"):
        make_reward("clip-typo")
    with pytest.raises(TypeError):
        FnReward(3)
