"""Aggregates over seeds and tasks with intervals, as rliable computes them (Agarwal et al. 2021): what they are
is :data:`EXPLAINED`, which the report prints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from robofeedback.rl.plots import save_figure, task_panels

EXPLAINED = (
    "A run's **score** is its final success rate where the task reports success; on a task without one it is the "
    "env return normalised by the suite's random-actions and true-reward entries on that task, (x - random) / "
    "(true - random), and a task without both baselines is left out of the aggregates. Per task and method, and per "
    "method across the tasks it ran, the report gives the interquartile mean (IQM, the mean of the middle 50% of "
    "runs) and the mean with 95% stratified bootstrap confidence intervals (percentile bootstrap, seeds resampled "
    "within each task); performance profiles (the fraction of runs scoring above tau, with bands); and the "
    "probability that a run of a method beats a run of its baseline on the same task (Mann-Whitney's U / n m, "
    "averaged over tasks) with its interval. With 3 seeds, the IQM trims nothing (it is the mean): the intervals, "
    "not the point, are what the seeds add."
)
REPS = 2000  # bootstrap resamples per interval of a table
BAND_REPS = 200  # per point of a curve's or a profile's band (rliable resamples in Python, and curves have many)
SEED = 0  # the bootstrap's random state: the same results give the same report
TRUE, RANDOM = "true reward", "random actions"
METRICS = {
    "pref_accuracy": "held-out preference accuracy",
    "rank_correlation": "rank correlation with true return",
    "epic_distance": "EPIC distance to the true reward",
}

Groups = dict[tuple[str, str], list[dict[str, Any]]]


def _rliable():
    from rliable import library, metrics  # arch and statsmodels: imported when a report is written

    return library, metrics


@contextmanager
def _seeded() -> Iterator[None]:
    """numpy's global random state seeded with SEED for the ``with`` block, and the caller's given back after it.
    rliable's bootstraps draw their resampled indices from the global state (the ``random_state`` they take goes to
    arch, which those draws do not use), so without this the same results could give other intervals."""
    state = np.random.get_state()
    np.random.seed(SEED)
    try:
        yield
    finally:
        np.random.set_state(state)


def interval(matrix: np.ndarray, statistic: str = "iqm", reps: int = REPS) -> tuple[float, float, float]:
    """The ``statistic`` (``iqm`` or ``mean``) of a runs x tasks score matrix and its 95% stratified bootstrap
    interval."""
    library, metrics = _rliable()
    func = {"iqm": metrics.aggregate_iqm, "mean": metrics.aggregate_mean}[statistic]
    # Each task's runs in one order (the bootstrap resamples within a task, so pairing across tasks is not used):
    # the resampled indices are seeded, so the interval would otherwise depend on the order the rows came in.
    matrix = np.sort(np.asarray(matrix, np.float64).reshape(len(matrix), -1), axis=0)
    if len(matrix) == 1:
        value = float(func(matrix))
        return value, value, value
    with _seeded():
        point, ci = library.get_interval_estimates({"x": matrix}, lambda m: np.array([func(m)]), reps=reps)
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def cell(values: list, digits: int = 2) -> str:
    """``IQM [low, high]`` of the values that are not None (the value alone for one, ``-`` for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    point, low, high = interval(np.array(values)[:, None])
    return f"{point:.{digits}f}" if len(values) == 1 else f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def scores(groups: Groups) -> dict[str, dict[str, np.ndarray]]:
    """Per method label, per task: its runs' scores (see the module's docstring); tasks that cannot be scored
    are left out."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (task, label), rows in groups.items():
        values = [r.get("success_rate") for r in rows]
        if any(v is None for v in values):
            low, high = (_baseline_return(groups, task, b) for b in (RANDOM, TRUE))
            if low is None or high is None or high == low:
                continue
            values = [(r["mean_env_return"] - low) / (high - low) for r in rows]
        out.setdefault(label, {})[task] = np.asarray(values, np.float64)
    return out


def _baseline_return(groups: Groups, task: str, baseline: str) -> float | None:
    rows = groups.get((task, baseline))
    return float(np.mean([r["mean_env_return"] for r in rows])) if rows else None


def _matrix(by_task: dict[str, np.ndarray]) -> np.ndarray | None:
    """Runs x tasks, for tasks with the same number of runs (rliable's stratified bootstrap needs a matrix)."""
    sizes = {len(v) for v in by_task.values()}
    if len(sizes) != 1:
        return None
    return np.stack(list(by_task.values()), axis=1)


def aggregate_table(groups: Groups) -> list[str]:
    """Per method, across the tasks it ran: tasks, runs, IQM and mean with their intervals."""
    lines = [
        "| method | tasks | runs per task | IQM [95% CI] | mean [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for label, by_task in scores(groups).items():
        matrix = _matrix(by_task)
        if matrix is None:
            lines.append(f"| {label} | {len(by_task)} | unequal | - | - |")
            continue
        iqm, mean = interval(matrix, "iqm"), interval(matrix, "mean")
        lines.append(
            f"| {label} | {len(by_task)} | {len(matrix)} | {iqm[0]:.2f} [{iqm[1]:.2f}, {iqm[2]:.2f}] "
            f"| {mean[0]:.2f} [{mean[1]:.2f}, {mean[2]:.2f}] |"
        )
    return lines


def improvement_table(groups: Groups) -> list[str]:
    """P(a run of the method beats a run of the baseline) on the tasks they share, against the true reward and
    against random actions."""
    library, metrics = _rliable()
    by_label = scores(groups)
    lines = ["| method | against | tasks | P(improvement) [95% CI] |", "|---|---|---|---|"]
    for label, by_task in by_label.items():
        if label in (TRUE, RANDOM):
            continue
        for baseline in (TRUE, RANDOM):
            shared = [t for t in by_task if t in by_label.get(baseline, {})]
            x = _matrix({t: by_task[t] for t in shared})
            y = _matrix({t: by_label[baseline][t] for t in shared})
            if not shared or x is None or y is None:
                continue
            with _seeded():
                point, ci = library.get_interval_estimates({"p": (x, y)}, metrics.probability_of_improvement, reps=REPS)
            p, (low, high) = float(point["p"]), ci["p"][:, 0]
            lines.append(f"| {label} | {baseline} | {len(shared)} | {p:.2f} [{low:.2f}, {high:.2f}] |")
    return lines


def plot_profiles(groups: Groups, path) -> Any:
    """Per task, each method's performance profile (fraction of runs with score > tau) with its 95% band."""
    library, _ = _rliable()
    by_label = scores(groups)
    tasks = list(dict.fromkeys(t for by_task in by_label.values() for t in by_task))
    if not tasks:
        return None
    taus = np.linspace(0.0, 1.0, 41)
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        here = {label: by_task[task][:, None] for label, by_task in by_label.items() if task in by_task}
        with _seeded():
            profiles, bands = library.create_performance_profile(here, taus, reps=BAND_REPS)
        for label, profile in profiles.items():
            (line,) = ax.plot(taus, profile, label=f"{label} ({len(here[label])} runs)")
            ax.fill_between(taus, bands[label][0], bands[label][1], color=line.get_color(), alpha=0.15)
        ax.set_title(task)
        ax.set_xlabel("score tau (success rate, or normalised return)")
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False)
    return save_figure(fig, path, dpi=90)


def plot_reward_metrics(groups: Groups, path) -> Any:
    """Per reward-model metric, each learned or zero-shot reward's IQM over seeds with its 95% interval."""
    measured = {
        f"{label}\n{task}": [r["reward_metrics"] for r in rows]
        for (task, label), rows in groups.items()
        if all("reward_metrics" in r for r in rows)
    }
    if not measured:
        return None
    fig, axes = task_panels(list(METRICS.values()))
    for ax, (key, title) in zip(axes, METRICS.items(), strict=True):
        names, points, errors = [], [], []
        for name, runs in measured.items():
            values = [m[key] for m in runs if m.get(key) is not None]
            if not values:
                continue
            point, low, high = interval(np.array(values)[:, None])
            names.append(name)
            points.append(point)
            errors.append((point - low, high - point))
        ax.barh(range(len(names)), points, xerr=np.array(errors).T if errors else None, color="tab:blue", alpha=0.7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlim(-1.0 if key == "rank_correlation" else 0.0, 1.0)
        if key == "pref_accuracy":
            ax.axvline(0.5, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3, axis="x")
    fig.set_figheight(max(3.0, 0.45 * len(measured) + 1.5))
    return save_figure(fig, path, dpi=90)
