"""Fixtures the data test modules share: two rendered panda reach episodes."""

import pytest

from robofeedback.data import collect
from robofeedback.envs import make


@pytest.fixture(scope="module")
def reach_trajectories():
    env = make("panda:PandaReach-v3", seed=0, render_size=(64, 48))
    return collect(env, None, n_episodes=2, render=True, seed=7)
