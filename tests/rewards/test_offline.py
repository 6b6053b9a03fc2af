"""Reward models fitted offline from an exported dataset, and policies trained on a saved one."""

import json

import numpy as np
import pytest

from robofeedback.cli import main
from robofeedback.data.dataset import export_dataset, read_dataset
from robofeedback.data.store import FeedbackStore
from robofeedback.feedback.teachers import oracle
from robofeedback.rewards.offline import FrozenReward, labelled_pairs, load_pretrained
from robofeedback.rewards.preference import PreferenceReward
from robofeedback.rl import train

TASK = "panda:PandaReachDense-v3"
CONFIG = {
    "env_kwargs": {"terminate_on_success": False, "render_size": 48},
    "eval_every": 1000,
    "eval_episodes": 2,
    "checkpoint_every": 1000,
    "video_episodes": 0,
    "sac": {"learning_starts": 100, "batch_size": 32},
    "preference": {"hidden": 32, "layers": 1, "max_epochs": 50},
    "feedback": {"every": 300, "first_round": 300, "segment_length": 10, "labels_per_round": 10, "budget": 40},
}


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    """A run that learned panda reaching's reward from 40 Oracle labels, and its store exported as a dataset."""
    out = tmp_path_factory.mktemp("online")
    train(TASK, reward="preference", feedback=oracle(), total_steps=1500, out_dir=out, config=CONFIG, progress=False)
    export_dataset(FeedbackStore(out / "feedback.db"), out / "dataset", frames="none")
    return out


def test_an_offline_fit_on_the_runs_labels_orders_fresh_pairs_as_well_as_the_online_model(online, tmp_path):
    args = ["reward", "fit", "--dataset", str(online / "dataset"), "--out", str(tmp_path / "offline")]
    assert (
        main(
            [*args, "--like", str(online / "reward_model"), "--heldout", "0", "--compare", str(online / "reward_model")]
        )
        == 0
    )
    report = json.loads((tmp_path / "offline" / "fit.json").read_text())
    assert report["labels"] == 40 and report["sources"] == {"script:oracle": 40}
    offline, online_metrics = report["reward_metrics"], report["compared"]
    assert offline["pref_pairs"] == online_metrics["pref_pairs"] > 100  # the same coverage pairs, Oracle-ordered
    assert offline["pref_accuracy"] > 0.6 and offline["pref_accuracy"] >= online_metrics["pref_accuracy"] - 0.1
    model = PreferenceReward.from_pretrained(tmp_path / "offline")
    saved = json.loads((online / "reward_model" / "config.json").read_text())["config"]
    assert model.config == saved  # the online model's settings, goals' places included
    assert "labels: 40" in (tmp_path / "offline" / "README.md").read_text()


def test_without_a_model_to_copy_the_settings_are_the_familys_and_a_share_is_held_out(online, tmp_path):
    args = ["reward", "fit", "--dataset", str(online / "dataset"), "--out", str(tmp_path / "m"), "--heldout", "0.25"]
    assert main(args) == 0
    report = json.loads((tmp_path / "m" / "fit.json").read_text())
    assert (report["heldout_labels"], report["labels"]) == (10, 30)
    assert 0.0 <= report["heldout_accuracy"] <= 1.0
    assert PreferenceReward.from_pretrained(tmp_path / "m").config["goal_difference"] is not None  # from the env


def test_labelled_pairs_are_the_standing_preferences_with_their_segments(online):
    pairs = labelled_pairs(read_dataset(online / "dataset"))
    store = FeedbackStore(online / "feedback.db")
    labels = store.labels(kind="preference")
    assert pairs.values == [lb.value for lb in labels]
    a, b = store.get_segments(labels[0].segment_ids)
    np.testing.assert_array_equal(pairs.pairs[0][0].obs, a.obs)
    np.testing.assert_array_equal(pairs.pairs[0][1].actions, b.actions)


def test_a_policy_trains_on_a_saved_model_as_it_is(online, tmp_path):
    frozen = load_pretrained(online / "reward_model")
    assert isinstance(frozen, FrozenReward)
    config = {k: v for k, v in CONFIG.items() if k not in ("feedback", "preference")}
    result = train(TASK, reward=frozen, total_steps=300, out_dir=tmp_path / "policy", config=config, progress=False)
    buffer = result.model.replay_buffer
    n = buffer.pos
    expected = frozen.model.rewards_of(buffer.observations[:n, 0], buffer.actions[:n, 0])
    np.testing.assert_allclose(buffer.rewards[:n, 0], expected, rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "policy" / "summary.json").read_text())["reward"] == "FrozenReward"


def test_folders_that_are_not_what_they_should_be_are_clear_errors(online, tmp_path, capsys):
    assert main(["reward", "fit", "--dataset", str(online), "--out", str(tmp_path / "x")]) == 2
    assert "no robofeedback_dataset.json" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained(online / "dataset")


def test_train_takes_a_saved_reward_model(online, tmp_path, capsys):
    args = ["train", "--env", TASK, "--reward-model", str(online / "reward_model"), "--steps", "200", "--no-progress"]
    config = tmp_path / "small.yaml"
    config.write_text("eval_every: 200\neval_episodes: 1\nvideo_episodes: 0\nsac: {learning_starts: 50}\n")
    assert main([*args, "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reward"] == "FrozenReward"
    assert main([*args, "--reward", "preference", "--out", str(tmp_path / "both")]) == 2
    assert "cannot be combined with --reward preference" in capsys.readouterr().err
