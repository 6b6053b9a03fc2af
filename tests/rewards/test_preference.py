import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robofeedback.envs import make
from robofeedback.feedback.teachers import oracle
from robofeedback.protocols import Transitions
from robofeedback.rewards.preference import (
    PreferenceData,
    PreferenceReward,
    StateEntropyReward,
    flat_obs,
    temporal_crop,
)

W = np.array([1.0, -2.0, 0.5, 0.0, 1.5])


def linear_segments(n, rng, length=8):
    """Segments whose true per-step reward is W . s (so a linear reward model can be exact)."""
    out = []
    for _ in range(n):
        obs = rng.normal(size=(length + 1, 5)).astype(np.float32)
        out.append(SimpleNamespace(obs=obs, actions=rng.normal(size=(length, 2)), env_rewards=obs[:-1] @ W, factors={}))
    return out


def labelled(n, rng):
    a, b = linear_segments(n, rng), linear_segments(n, rng)
    pairs = list(zip(a, b, strict=True))
    return PreferenceData.from_pairs(pairs, oracle().label_many(pairs))


def small_model(**kw):
    return PreferenceReward(5, 2, **{"hidden": 32, "layers": 2, "seed": 0, **kw})


def test_bradley_terry_learns_a_linear_reward():
    rng = np.random.default_rng(0)
    model = small_model(output=None)  # the true reward is unbounded, so no tanh on the model's output
    fit = model.fit(labelled(400, rng))
    assert fit["train_accuracy"] >= 0.97 and fit["epochs"] < model.config["max_epochs"]
    assert model.accuracy(labelled(400, rng)) > 0.93
    obs = rng.normal(size=(500, 5)).astype(np.float32)
    learned = model.member_rewards(obs, np.zeros((500, 2))).mean(axis=0)
    assert np.corrcoef(learned, obs @ W)[0, 1] > 0.9


def test_equal_labels_pull_towards_half():
    rng = np.random.default_rng(1)
    segments = linear_segments(60, rng)
    twins = [(s, SimpleNamespace(obs=s.obs + 0.0, actions=s.actions)) for s in segments]
    data = PreferenceData.from_pairs(twins, ["equal"] * len(twins))
    assert set(data.y) == {0.5}
    model = small_model()
    model.fit(data, max_epochs=5)
    np.testing.assert_allclose(model.predict_proba(data), 0.5, atol=1e-5)
    assert np.isnan(model.accuracy(data))  # accuracy counts strict labels only


def test_skips_are_left_out_and_lengths_may_differ():
    rng = np.random.default_rng(2)
    a, b, c = linear_segments(1, rng, 8)[0], linear_segments(1, rng, 5)[0], linear_segments(1, rng, 8)[0]
    data = PreferenceData.from_pairs([(a, b), (a, c)], ["a", "skip"])
    assert len(data) == 1 and data.mask_b.sum() == 5 and data.mask_a.sum() == 8
    with pytest.raises(ValueError, match="skipped"):
        PreferenceData.from_pairs([(a, c)], ["skip"])
    with pytest.raises(ValueError, match="'a', 'b'"):
        PreferenceData.from_pairs([(a, c)], ["left"])


def test_batched_rewards_match_one_at_a_time_and_survive_pickling(tmp_path):
    rng = np.random.default_rng(3)
    model = small_model()
    model.fit(labelled(50, rng), max_epochs=3)
    obs, act = rng.normal(size=(7, 5)), rng.normal(size=(7, 2))
    batch = Transitions(obs=obs, action=act, next_obs=obs, info=[{}] * 7)
    together = model(batch)
    one_by_one = [
        model(Transitions(obs=obs[i : i + 1], action=act[i : i + 1], next_obs=obs[i : i + 1], info=[{}]))[0]
        for i in range(7)
    ]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-6, atol=1e-7)
    assert together.dtype == np.float32
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model))(batch), together)
    loaded = PreferenceReward.load(model.save(tmp_path / "rm.pt"))
    np.testing.assert_array_equal(loaded(batch), together)
    assert loaded.history == model.history
    loaded.fit(labelled(20, rng), max_epochs=1)  # and it trains on


def test_query_selection_strategies():
    rng = np.random.default_rng(4)
    model = small_model(ensemble=5)
    model.fit(labelled(30, rng), max_epochs=2)
    candidates = PreferenceData.from_pairs(list(zip(linear_segments(40, rng), linear_segments(40, rng), strict=True)))
    p = model.predict_proba(candidates)
    chosen = model.select(candidates, 5, "disagreement")
    assert set(chosen) == set(np.argsort(-p.std(axis=0))[:5])
    mean = p.mean(axis=0)
    entropy = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))
    assert set(model.select(candidates, 5, "entropy")) == set(np.argsort(-entropy)[:5])
    uniform = model.select(candidates, 10, "uniform")
    assert len(set(uniform)) == 10
    with pytest.raises(ValueError, match="strategy"):
        model.select(candidates, 3, "greedy")


def test_model_settings_are_checked():
    with pytest.raises(ValueError, match="activation"):
        PreferenceReward(3, 1, activation="swish")
    with pytest.raises(ValueError, match="hidden"):
        PreferenceReward(3, 1, hidden=0)
    with pytest.raises(ValueError, match="scale"):
        PreferenceReward(3, 1, scale=0.0)
    model = PreferenceReward(3, 1, hidden=8, layers=1)
    with pytest.raises(ValueError, match="inputs"):
        model.member_rewards(np.zeros((2, 4)), np.zeros((2, 1)))


def test_dict_observations_are_flattened_in_gymnasium_order():
    env = make("panda:PandaReach-v3", seed=0)
    obs, _ = env.reset()
    from gymnasium import spaces

    np.testing.assert_allclose(flat_obs(obs), spaces.flatten(env.observation_space, obs))
    model = PreferenceReward.for_env(env, hidden=8, layers=1)
    assert model.config["obs_dim"] == 12 and model.config["act_dim"] == 3


def test_state_entropy_rewards_novel_states():
    reward = StateEntropyReward(k=3, capacity=200, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        states = rng.normal(scale=0.1, size=(4, 3))
        reward(Transitions(obs=states, action=np.zeros((4, 1)), next_obs=states, info=[{}] * 4))
    near = np.zeros((1, 3))
    far = np.full((1, 3), 5.0)
    r_near = reward(Transitions(obs=near, action=np.zeros((1, 1)), next_obs=near, info=[{}]))[0]
    r_far = reward(Transitions(obs=far, action=np.zeros((1, 1)), next_obs=far, info=[{}]))[0]
    assert r_far > 10 * r_near > 0


def test_pseudo_labels_are_kept_only_above_the_threshold():
    rng = np.random.default_rng(5)
    model = small_model(output=None, pseudo_threshold=0.9, pseudo_ratio=2)
    model.fit(labelled(200, rng))
    unlabelled = PreferenceData.from_pairs(list(zip(linear_segments(300, rng), linear_segments(300, rng), strict=True)))
    member = model.members[0]
    _, confident = model._pseudo_label_loss(member, unlabelled, 100)
    p = model.predict_proba(unlabelled)[0]
    share = np.mean(np.maximum(p, 1 - p) > 0.9)
    assert 0 < confident < 200 and abs(confident / 200 - share) < 0.15  # 200 drawn at random from the pool
    strict = small_model(output=None, pseudo_threshold=0.9999999, pseudo_ratio=2)
    assert strict._pseudo_label_loss(strict.members[0], unlabelled, 100)[1] == 0  # an untrained net is never sure
    fit = model.fit(labelled(50, rng), max_epochs=2, unlabelled=unlabelled)
    assert 0 < fit["pseudo_labelled"] <= 1
    assert "pseudo_labelled" not in small_model().fit(labelled(50, rng), max_epochs=1, unlabelled=unlabelled)


def test_temporal_crop_keeps_one_window_per_segment_of_a_common_length():
    rng = np.random.default_rng(7)
    mask_a = np.zeros((200, 12), np.float32)
    mask_b = np.zeros((200, 12), np.float32)
    mask_a[:, :10] = 1
    mask_b[:100, :10] = 1
    mask_b[100:, :7] = 1  # a segment cut short by the episode's end
    a, b = temporal_crop(mask_a, mask_b, 3, rng)
    lengths = a.sum(axis=1)
    np.testing.assert_array_equal(lengths, b.sum(axis=1))
    assert set(lengths[:100]) == {7, 8, 9, 10} and set(lengths[100:]) == {4, 5, 6, 7}
    for crop, full in ((a, mask_a), (b, mask_b)):
        assert np.all(crop <= full)  # windows lie inside the segment's steps
        assert np.all(np.diff(crop, axis=1).clip(max=0).sum(axis=1) >= -1)  # one contiguous window
    starts_a = a.argmax(axis=1)
    assert len(set(starts_a[:100])) > 1 and np.any(starts_a != b.argmax(axis=1))


def test_cropped_segments_keep_their_label():
    rng = np.random.default_rng(8)
    data = labelled(64, rng)
    model = small_model(crop=3)
    *_, y, _ = model._tensors(data, np.arange(64), crop=True)
    np.testing.assert_array_equal(y.numpy(), data.y)
    _, _, mask_a, _, _, mask_b, _, _ = model._tensors(data, np.arange(64), crop=True)
    assert mask_a.sum(axis=1).min() >= 5 and mask_a.sum(axis=1).max() <= 8
    assert not np.array_equal(mask_a.numpy(), data.mask_a)


def test_exploration_bonus_decays_as_scheduled():
    rng = np.random.default_rng(9)
    model = small_model(explore_bonus=0.05, explore_decay=1e-3)
    model.fit(labelled(40, rng), max_epochs=2)
    obs, act = rng.normal(size=(30, 5)).astype(np.float32), rng.normal(size=(30, 2))
    members = model.member_rewards(obs, act)
    for steps in (0, 1000, 5000):
        model.steps = steps
        beta = 0.05 * (1 - 1e-3) ** steps
        assert model.explore_weight == pytest.approx(beta)
        np.testing.assert_allclose(
            model.rewards_of(obs, act), members.mean(axis=0) + beta * members.std(axis=0), rtol=1e-5, atol=1e-6
        )
    model.steps = 0
    assert np.all(model.rewards_of(obs, act) > members.mean(axis=0))  # the bonus is never negative
    np.testing.assert_allclose(small_model().rewards_of(obs, act), small_model().member_rewards(obs, act).mean(0))


def test_bounded_retraining_and_input_normalisation(tmp_path):
    rng = np.random.default_rng(10)
    data = labelled(600, rng)
    model = small_model(output=None, max_updates=7, stop_accuracy=1.01, batch_size=64)
    assert model.fit(data)["updates"] == 7  # 600 labels would be 10 minibatches an epoch, for 200 epochs
    big = PreferenceData(
        data.obs_a * 100.0, data.act_a, data.mask_a, data.obs_b * 100.0, data.act_b, data.mask_b, data.y
    )
    normed = small_model(output=None, input_norm=True)
    normed.fit(big, max_epochs=30)
    mean, std = normed.input_stats
    assert np.all(std[:5].numpy() > 50) and np.all(np.abs(mean.numpy()) < 20)
    assert normed.accuracy(big) > 0.9
    copy = PreferenceReward.load(normed.save(tmp_path / "m.pt"))
    obs = rng.normal(size=(20, 5)).astype(np.float32) * 100
    np.testing.assert_allclose(copy.rewards_of(obs, np.zeros((20, 2))), normed.rewards_of(obs, np.zeros((20, 2))))


def test_goal_features_come_from_the_env_and_see_achieved_minus_desired(tmp_path):
    env = make("panda:PandaReachDense-v3", seed=0, flatten=True)
    obs, _ = env.reset(seed=0)
    model = PreferenceReward.for_env(env, goal_features=True, hidden=16, layers=1, use_actions=False)
    achieved, desired = model.config["goal_difference"][:2], model.config["goal_difference"][2:]
    np.testing.assert_array_equal(obs[achieved[0] : achieved[1]], obs[6:9])  # panda: achieved goal = tip position
    x = torch.from_numpy(obs[None])
    features = model._features(x)[0].numpy()
    np.testing.assert_allclose(features[-3:], obs[slice(*achieved)] - obs[slice(*desired)])
    only = PreferenceReward.for_env(env, goal_features=True, goal_only=True, hidden=16, layers=1, use_actions=False)
    assert only._features(x).shape[-1] == 9 and only.members[0][0].in_features == 9
    assert only.rewards_of(obs[None], np.zeros((1, 3))).shape == (1,)
    copy = PreferenceReward.load(only.save(tmp_path / "m.pt"))
    np.testing.assert_allclose(
        copy.rewards_of(obs[None], np.zeros((1, 3))), only.rewards_of(obs[None], np.zeros((1, 3)))
    )
    distance = PreferenceReward.for_env(
        env, goal_features=True, goal_only=True, goal_distance=True, hidden=16, layers=1, use_actions=False
    )
    assert distance.members[0][0].in_features == 10
    np.testing.assert_allclose(
        distance._features(x)[0, -1].item(), np.linalg.norm(obs[slice(*achieved)] - obs[slice(*desired)]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="achieved_goal"):
        PreferenceReward.for_env(make("metaworld:reach", seed=0), goal_features=True)
    for option in ("goal_only", "goal_distance"):
        with pytest.raises(ValueError, match="goal_only and goal_distance need"):
            PreferenceReward(12, 3, **{option: True})


def test_label_smoothing_moves_the_target_off_certainty():
    rng = np.random.default_rng(3)
    data = labelled(40, rng)
    fits = {}
    for eps in (0.0, 0.2):
        model = small_model(output=None, label_smoothing=eps, stop_accuracy=1.1, max_epochs=300, lr=3e-3)
        model.fit(data)
        p = model.predict_proba(data).mean(axis=0)
        fits[eps] = np.where(data.y == 1.0, p, 1 - p)  # the probability the model gives each label
    assert np.median(fits[0.0]) > 0.99  # unsmoothed: the labels become certainties
    assert abs(np.median(fits[0.2]) - 0.9) < 0.05  # smoothed by 0.2: the target is 1 - 0.2 / 2
    with pytest.raises(ValueError, match="label_smoothing"):
        small_model(label_smoothing=0.5)


def test_a_saved_folder_loads_to_the_same_rewards_and_describes_itself(tmp_path):
    import json

    from safetensors.torch import load_file

    rng = np.random.default_rng(0)
    model = small_model(ensemble=2)
    model.fit(labelled(64, rng), max_epochs=5)
    card = {"env": "panda:PandaReachDense-v3", "labels": 64, "sources": {"script:oracle": 64}, "license": "cc-by-4.0"}
    folder = model.save_pretrained(tmp_path / "model", card)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "history.json", "README.md"}
    obs, act = rng.normal(size=(10, 5)).astype(np.float32), rng.normal(size=(10, 2)).astype(np.float32)
    loaded = PreferenceReward.from_pretrained(folder)
    np.testing.assert_allclose(loaded.rewards_of(obs, act), model.rewards_of(obs, act), rtol=1e-6)
    assert loaded.config == model.config and loaded.history == model.history
    assert "input_mean" in load_file(folder / "model.safetensors")  # plain safetensors: no robofeedback needed
    text = (folder / "README.md").read_text()
    assert "license: cc-by-4.0" in text and "script:oracle (64)" in text and "panda:PandaReachDense-v3" in text

    class Other(PreferenceReward):
        pass

    with pytest.raises(ValueError, match="holds a PreferenceReward: load it with PreferenceReward.from_pretrained"):
        Other.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99; this robofeedback reads version 1"):
        PreferenceReward.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "config": {**config["config"], "hidden": 8}}))
    with pytest.raises(ValueError, match="do not fit the saved settings"):
        PreferenceReward.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a robofeedback reward model"):
        PreferenceReward.from_pretrained(folder)
    with pytest.raises(ValueError, match="needs config.json and model.safetensors"):
        PreferenceReward.from_pretrained(tmp_path)
