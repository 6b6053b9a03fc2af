"""The bi-level loop's bench section: its entries' settings, its study as a suite, and its table in the report."""

import pytest

from robofeedback.bench.suite import entry_id, expand, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.bilevel.bench import BilevelEntry, report, run_entry

ENTRY = {"method": "bilevel", "task": "metaworld:drawer-close", "seed": 0, "steps": 200, "config": {}}


def test_entry_settings_reject_unknown_keys_and_lower_levels_before_anything_is_built(tmp_path):
    settings = BilevelEntry.from_dict({**ENTRY, "updater": "replay", "fps": 10})
    assert (settings.updater, settings.fps, settings.iterations, settings.text) == ("replay", 10, 2, None)
    with pytest.raises(EntryError, match="unknown key 'iteration'; allowed keys: method, task, seed, .*, iterations"):
        run_entry({**ENTRY, "iteration": 4}, tmp_path, None)
    with pytest.raises(EntryError, match="'seed' is required"):
        BilevelEntry.from_dict({k: v for k, v in ENTRY.items() if k != "seed"})
    with pytest.raises(EntryError, match="updater must be one of offline, replay, vlm-only, got 'llm'"):
        run_entry({**ENTRY, "updater": "llm"}, tmp_path, None)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("suite", ["bilevel", "quick", "full", "claims"])
def test_every_bilevel_entry_of_the_shipped_suites_is_valid(suite):
    entries = [e for e in expand(load_yaml(suite_path(suite))) if e["method"] == "bilevel"]
    assert entries
    for entry in entries:
        BilevelEntry.from_dict(entry)


def test_the_bilevel_suite_holds_the_study():
    entries = expand(load_yaml(suite_path("bilevel")))
    assert [entry_id(e) for e in entries] == [
        "bilevel|metaworld:drawer-close|offline|seed0",
        "bilevel|metaworld:drawer-close|replay|seed0",
        "bilevel|metaworld:drawer-close|vlm-only|seed0",
        "icpl|metaworld:drawer-close|no video|seed0",
    ]
    config = {"eval_every": 2000, "eval_episodes": 20, "video_episodes": 1}
    config["env_kwargs"] = {"max_episode_steps": 150, "render_size": 96}
    assert all(e["config"] == config and e["steps"] == 6000 and e["iterations"] == 4 for e in entries)
    icpl = entries[-1]
    assert icpl["candidates"] == 2 and icpl["expert_video"] is True and icpl["proposer"] == "offline"


def test_the_report_shows_similarity_and_success_per_iteration():
    curve = [{"steps": 200 * (i + 1), "success_rate": s, "mean_env_return": 1.0} for i, s in enumerate([0.0, 0.5])]
    row = {"task": "metaworld:drawer-close", "seed": 1, "judge": "offline:clip-dtw", "curve": curve}
    row.update(lower_level="offline:feedback-weights", similarity=[0.41, 0.5], config=ENTRY, wall_time_s=3.0)
    row["steps"] = 400
    text = "\n".join(report([row]))
    assert text.startswith("## Bi-level reward learning from an expert video")
    line = "| metaworld:drawer-close | offline:clip-dtw | offline:feedback-weights | 1 | 2 x 200 | 0.410, 0.500 "
    assert line + "| 0.00, 0.50 | 3.0 |" in text


TINY = {
    "eval_every": 100,
    "eval_episodes": 1,
    "video_episodes": 0,
    "env_kwargs": {"max_episode_steps": 20, "render_size": 48},
    "sac": {"learning_starts": 50, "batch_size": 16},
}


@pytest.mark.slow
def test_the_vlm_only_arm_trains_on_the_judges_image_model(tmp_path):
    entry = {**ENTRY, "updater": "vlm-only", "iterations": 2, "steps": 100, "config": TINY}
    row = run_entry(entry, tmp_path, None)
    assert row["steps"] == 200 and row["lower_level"] == "none (VLM only)" and len(row["similarity"]) == 1
    assert row["reward_metrics"]["epic_canonical"] == "shift" and row["reward_metrics"]["coverage_transitions"] == 320
    text = "\n".join(report([{**row, "task": ENTRY["task"], "seed": 0, "config": entry, "wall_time_s": 1.0}]))
    assert "| none (VLM only) | 0 | 1 x 200 |" in text


@pytest.mark.slow
def test_the_loops_last_reward_code_is_measured_against_the_env_reward(tmp_path):
    row = run_entry({**ENTRY, "iterations": 1, "steps": 100, "config": TINY}, tmp_path, None)
    assert row["lower_level"] == "offline:feedback-weights" and len(row["similarity"]) == 1
    assert row["reward_metrics"]["epic_canonical"] == "shift" and 0 <= row["reward_metrics"]["epic_distance"] <= 1
