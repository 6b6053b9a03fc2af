"""Aggregates over seeds and tasks with rliable's intervals, and the plots the report shows."""

import numpy as np
import pytest

from robofeedback.bench.aggregate import (
    aggregate_table,
    cell,
    improvement_table,
    interval,
    plot_profiles,
    plot_reward_metrics,
    scores,
)


def _rows(task, successes=None, returns=None, metrics=None):
    n = len(successes if successes is not None else returns)
    return [
        {
            "task": task,
            "success_rate": None if successes is None else successes[i],
            "mean_env_return": 0.0 if returns is None else returns[i],
            **({"reward_metrics": metrics} if metrics else {}),
        }
        for i in range(n)
    ]


GROUPS = {
    ("reach", "true reward"): _rows("reach", [1.0, 1.0, 0.9]),
    ("reach", "random actions"): _rows("reach", [0.1, 0.2, 0.1]),
    ("reach", "PEBBLE"): _rows("reach", [0.6, 0.9, 0.3], metrics={"pref_accuracy": 0.8, "epic_distance": 0.3}),
    ("hop", "true reward"): _rows("hop", returns=[100.0, 110.0, 90.0]),
    ("hop", "random actions"): _rows("hop", returns=[10.0, 10.0, 10.0]),
    ("hop", "PEBBLE"): _rows("hop", returns=[55.0, 10.0, 100.0]),
}


def test_scores_are_success_or_return_normalised_by_the_baselines():
    by_label = scores(GROUPS)
    assert by_label["PEBBLE"]["reach"].tolist() == [0.6, 0.9, 0.3]
    assert by_label["PEBBLE"]["hop"] == pytest.approx([0.5, 0.0, 1.0])  # (x - 10) / (100 - 10)
    assert "hop" not in scores({k: v for k, v in GROUPS.items() if k != ("hop", "random actions")})["PEBBLE"]


def test_intervals_hold_the_point_and_widen_with_spread():
    point, low, high = interval(np.array([[0.6], [0.9], [0.3]]))
    assert point == pytest.approx(0.6) and low < point < high and 0.3 <= low and high <= 0.9
    assert interval(np.array([[0.5], [0.5], [0.5]])) == (0.5, 0.5, 0.5)
    assert cell([0.4]) == "0.40" and cell([None]) == "-" and cell([0.0, 1.0]).startswith("0.50 [0.00, 1.00]")
    assert cell([0.6, 0.9, 0.3]) == cell([0.6, 0.9, 0.3])  # the bootstrap is seeded: the same report twice


def test_intervals_do_not_depend_on_numpys_global_random_state_and_leave_it_as_it_was():
    runs = np.random.default_rng(1).random((5, 3))
    first = [interval(runs, "mean"), improvement_table(GROUPS)]
    np.random.seed(123)
    np.random.rand(7)
    expected_next = np.random.get_state()[1].copy(), np.random.get_state()[2]
    again = [interval(runs, "mean"), improvement_table(GROUPS)]
    assert again == first
    state = np.random.get_state()
    assert (state[1] == expected_next[0]).all() and state[2] == expected_next[1]


def test_the_tables_aggregate_across_tasks_and_against_the_baselines():
    table = "\n".join(aggregate_table(GROUPS))
    assert "| PEBBLE | 2 | 3 |" in table and "| true reward | 2 | 3 | 1.00" not in table  # 0.9 on one run
    lines = improvement_table(GROUPS)
    beats_random = next(line for line in lines if line.startswith("| PEBBLE | random actions"))
    p = float(beats_random.split("|")[4].split()[0])
    assert 0.5 < p <= 1.0
    assert not any(line.startswith("| true reward |") for line in lines)


def test_the_plots_are_written(tmp_path):
    assert plot_profiles(GROUPS, tmp_path / "profiles.png").stat().st_size > 5000
    assert plot_reward_metrics(GROUPS, tmp_path / "metrics.png").stat().st_size > 5000
    assert plot_reward_metrics({("reach", "x"): _rows("reach", [0.1])}, tmp_path / "none.png") is None
