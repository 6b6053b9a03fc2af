"""ICPL's bench section: its entries' settings, its study as a suite, and its table in the suite's report."""

import pytest

from robofeedback.bench.suite import expand, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.icpl.bench import ICPLEntry, report, run_entry

ENTRY = {"method": "icpl", "task": "panda:PandaReach-v3", "seed": 0, "steps": 300, "config": {}}


def test_entry_settings_reject_unknown_keys_and_proposers_before_anything_is_built(tmp_path):
    settings = ICPLEntry.from_dict({**ENTRY, "proposer": "replay", "candidates": 4})
    assert (settings.proposer, settings.candidates, settings.iterations, settings.expert_video) == (
        "replay",
        4,
        2,
        False,
    )
    with pytest.raises(EntryError, match="unknown key 'candidate'; allowed keys: method, task, seed, .*, candidates"):
        run_entry({**ENTRY, "candidate": 4}, tmp_path, None)
    with pytest.raises(EntryError, match="'steps' is required"):
        ICPLEntry.from_dict({k: v for k, v in ENTRY.items() if k != "steps"})
    with pytest.raises(EntryError, match="proposer must be one of offline, replay, got 'gpt'"):
        run_entry({**ENTRY, "proposer": "gpt"}, tmp_path, None)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("suite", ["icpl", "bilevel", "quick", "full"])
def test_every_icpl_entry_of_the_shipped_suites_is_valid(suite):
    entries = [e for e in expand(load_yaml(suite_path(suite))) if e["method"] == "icpl"]
    assert entries
    for entry in entries:
        ICPLEntry.from_dict(entry)


def test_the_icpl_suite_holds_the_study():
    entries = expand(load_yaml(suite_path("icpl")))
    assert sorted((e["task"], e["proposer"]) for e in entries) == [
        ("metaworld:drawer-close", "offline"),
        ("metaworld:drawer-close", "replay"),
        ("panda:PandaReach-v3", "offline"),
        ("panda:PandaReach-v3", "replay"),
    ]
    drawer = next(e for e in entries if e["task"] == "metaworld:drawer-close")
    assert drawer["config"] == {
        "eval_every": 2000,
        "eval_episodes": 20,
        "video_episodes": 1,
        "env_kwargs": {"max_episode_steps": 150, "render_size": 96},
    }
    assert (drawer["iterations"], drawer["candidates"], drawer["steps"]) == (3, 4, 6000)


def test_the_report_shows_the_best_candidate_per_iteration():
    def row(proposer, successes, similarity=None):
        curve = [{"steps": 1, "labels": 3, "success_rate": s, "mean_env_return": -1.0} for s in successes]
        out = {"task": "panda:PandaReach-v3", "seed": 0, "proposer": proposer, "curve": curve, "labels": 6}
        out.update(config={**ENTRY, "candidates": 4}, wall_time_s=12.5)
        return {**out, **({"similarity": similarity} if similarity else {})}

    text = "\n".join(report([row("offline:factor-weights", [0.5, 1.0])]))
    assert text.startswith("## ICPL") and "hand-written replay is not a model" in text
    assert "| panda:PandaReach-v3 | offline:factor-weights | 0 | 4 | 300 | 0.50, 1.00 | 6 | 12.5 |" in text
    text = "\n".join(report([row("llm:replay", [None, 0.2], [0.31, 0.4]), row("offline:factor-weights", [0.1])]))
    assert "| similarity to the expert video per iteration |" in text
    assert "| llm:replay | 0 | 4 | 300 | -, 0.20 | 0.310, 0.400 | 6 | 12.5 |" in text
    assert "| offline:factor-weights | 0 | 4 | 300 | 0.10 | - | 6 | 12.5 |" in text
