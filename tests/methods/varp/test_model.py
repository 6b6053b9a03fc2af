import json
import pickle

import numpy as np
import pytest

from robofeedback.data.store import FeedbackStore
from robofeedback.feedback.vlm import ClipJudge
from robofeedback.methods.varp.model import AgentRegularizedReward
from robofeedback.rewards.preference import PreferenceData
from robofeedback.rl import train


class Steps:
    """A segment as PreferenceData.from_pairs reads it: H actions, H + 1 observations."""

    def __init__(self, obs, actions):
        self.obs, self.actions = obs, actions


def linear_preferences(rng, n_pairs=200, horizon=5):
    """Pairs of random 2-D segments labelled by the true reward r(s) = s[0]."""
    pairs, values = [], []
    for _ in range(n_pairs):
        a, b = rng.normal(size=(horizon + 1, 2)), rng.normal(size=(horizon + 1, 2))
        pairs.append((Steps(a, np.zeros((horizon, 1))), Steps(b, np.zeros((horizon, 1)))))
        values.append("a" if a[:-1, 0].sum() > b[:-1, 0].sum() else "b")
    return PreferenceData.from_pairs(pairs, values)


def test_agent_regularization_raises_the_reward_of_the_policys_own_data():
    rng = np.random.default_rng(0)
    data, fresh = linear_preferences(rng), linear_preferences(rng)
    policy_obs = rng.normal(loc=(0.0, 2.0), scale=0.3, size=(500, 2))  # a region the labels say nothing about
    policy_actions = np.zeros((500, 1))
    means, accuracies = {}, {}
    for lam in (0.0, 0.5):
        model = AgentRegularizedReward(2, 1, agent_reg=lam, hidden=32, layers=2, max_epochs=50, lr=1e-3, seed=0)
        model.set_policy_data(policy_obs, policy_actions)
        model.fit(data)
        accuracies[lam] = model.accuracy(fresh)
        means[lam] = float(model.rewards_of(policy_obs, policy_actions).mean())
    assert means[0.5] > means[0.0] + 0.3
    assert accuracies[0.5] > 0.85 and accuracies[0.0] > 0.85  # the preferences are still learned


def test_saving_loading_and_pickling_keep_lambda(tmp_path):
    model = AgentRegularizedReward(3, 2, agent_reg=0.25, policy_steps=300, hidden=16, layers=1)
    model.set_policy_data(np.zeros((10, 3)), np.zeros((10, 2)))
    again = AgentRegularizedReward.load(model.save(tmp_path / "m.pt"))
    assert (again.agent_reg, again.policy_steps) == (0.25, 300)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.regularizer(copy.members[0]) is None  # the policy data stays behind; scoring works
    assert copy.rewards_of(np.ones((4, 3)), np.ones((4, 2))).shape == (4,)
    with pytest.raises(ValueError, match="agent_reg"):
        AgentRegularizedReward(3, 2, agent_reg=-1)


def test_training_with_a_clip_judge_on_sketches(tmp_path, tiny_train_config):
    config = {
        **tiny_train_config,
        "video_episodes": 0,
        "env_kwargs": {"max_episode_steps": 100, "render_size": 64},
        "preference": {"hidden": 32, "layers": 1, "max_epochs": 10, "agent_reg": 0.1, "policy_steps": 200},
        "feedback": {"every": 300, "first_round": 250, "segment_length": 20, "labels_per_round": 6, "budget": 12},
    }
    judge = ClipJudge("the drawer is open", baseline="the drawer is closed", alpha=1.0)
    result = train(
        "metaworld:drawer-open",
        reward="varp",
        feedback=judge,
        total_steps=600,
        out_dir=tmp_path,
        config=config,
        progress=False,
    )
    assert judge.camera is not None  # taken from the env by train()
    labels = FeedbackStore(tmp_path / "feedback.db").labels(kind="preference")
    assert len(labels) == 12 and {lb.source for lb in labels} == {"vlm:clip-mini"}
    assert all(lb.note.startswith("clip similarity") for lb in labels)
    assert result.feedback["source"] == "vlm:clip-mini"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reward"] == "varp"
    model = AgentRegularizedReward.load(tmp_path / "checkpoints" / "reward_model.pt")
    assert model.agent_reg == 0.1
