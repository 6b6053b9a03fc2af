"""Safe MPC's bench section: the typed entry settings, the suite entries, one entry's row and the report."""

import pytest

from robofeedback.bench.suite import expand, suite_path
from robofeedback.config import load_yaml
from robofeedback.methods.bench import EntryError
from robofeedback.methods.safe_mpc.bench import RULES, SafeMPCEntry, report, rule, run_entry

ENTRY = {"method": "safe_mpc", "task": "safety:pendulum", "seed": 0}


def test_entry_settings_default_and_reject_what_they_do_not_know():
    assert SafeMPCEntry.from_dict(ENTRY) == SafeMPCEntry(**ENTRY, trials=5, attempts=40, misspecified=False)
    assert SafeMPCEntry.from_dict({**ENTRY, "trials": 2, "misspecified": True}) == SafeMPCEntry(
        **ENTRY, trials=2, attempts=40, misspecified=True
    )
    with pytest.raises(EntryError, match="unknown keys 'episodes', 'trails'; allowed keys: .*trials, attempts"):
        SafeMPCEntry.from_dict({**ENTRY, "trails": 3, "episodes": 10})
    with pytest.raises(ValueError, match="attempts must be a positive integer"):
        SafeMPCEntry.from_dict({**ENTRY, "attempts": 0})
    with pytest.raises(EntryError, match="misspecified must be true or false"):
        SafeMPCEntry.from_dict({**ENTRY, "misspecified": "yes"})


def test_an_entry_is_checked_before_anything_is_built(tmp_path):
    entry = {"method": "safe_mpc", "task": "safety:pendulum", "seed": 0, "trials": 1, "budget": 10}
    with pytest.raises(EntryError, match="unknown key 'budget'"):
        run_entry(entry, tmp_path, None)
    with pytest.raises(EntryError, match="safety:pendulum, safety:drone, safety:arm; got 'safety:cartpole'"):
        run_entry({"method": "safe_mpc", "task": "safety:cartpole", "seed": 0}, tmp_path, None)
    with pytest.raises(EntryError, match="got 'panda:PandaReach-v3'"):
        run_entry({"method": "safe_mpc", "task": "panda:PandaReach-v3", "seed": 0}, tmp_path, None)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("suite", ["safe_mpc", "quick", "full", "claims"])
def test_the_suites_safe_mpc_entries_are_valid_settings(suite):
    entries = [e for e in expand(load_yaml(suite_path(suite))) if e["method"] == "safe_mpc"]
    assert entries
    for entry in entries:
        SafeMPCEntry.from_dict(entry)
    if suite == "safe_mpc":  # every game, well specified and misspecified, 20 trials of 40 attempts
        games = {(e["task"], e.get("misspecified", False)) for e in entries}
        assert games == {(f"safety:{g}", m) for g in ("pendulum", "drone", "arm") for m in (False, True)}
        assert {(e["trials"], e["attempts"]) for e in entries} == {(20, 40)}


def test_a_misspecified_entry_reports_the_rule_that_declared_it(tmp_path):
    entry = {"method": "safe_mpc", "task": "safety:pendulum", "seed": 1, "trials": 1, "misspecified": True}
    row = run_entry(entry, tmp_path, None)
    assert row["game"] == "pendulum" and row["misspecified"] and row["declared_misspecified"] == 1
    assert row["trials"] == 1 and row["episodes"] == 40 and [rule(r) for r in row["reasons"]][0] in RULES.values()
    well = run_entry({**entry, "misspecified": False, "attempts": 2}, tmp_path, None)
    text = "\n".join(report([{**row, "task": entry["task"]}, {**well, "task": entry["task"]}]))
    assert f"| 1 / 1 ({rule(row['reasons'][0])}: 1) |" in text
    assert "| safety:pendulum | true constraint inside | 2 | 1 |" in text
    assert "12.8 ± 2.1" in text  # the paper's figure next to the well-specified game


def test_each_rule_is_named_from_the_learners_reason():
    assert rule("the ellipsoid problem has no solution (the polytope has no interior)") == "no parameters left"
    assert rule("41 corrections exceed the certified bound K = 40") == "more than K corrections"
    assert rule("something new") == "something new"


def test_the_random_guess_ablation_runs_and_is_named(tmp_path):
    entry = {"method": "safe_mpc", "task": "safety:pendulum", "seed": 0, "trials": 2, "attempts": 10}
    row = run_entry({**entry, "guess": "random"}, tmp_path, None)
    assert row["guess"] == "random" and row["trials"] == 2
    assert "random guess (ablation)" in "\n".join(report([{**row, "task": entry["task"]}]))
    with pytest.raises(EntryError, match="guess must be"):
        run_entry({**entry, "guess": "centre"}, tmp_path, None)
