"""The benchmark suite: every reward module and the baselines, measured on the same tasks, in one command.

``robofeedback bench --suite quick`` runs the entries of ``configs/bench/suites/quick.yaml`` (task x method x
feedback source x budget x seeds), appends each finished entry as a JSON line to ``<out>/results.jsonl`` with
its seed, commit and config, and renders ``<out>/REPORT.md`` with PNG plots (success rate and env return
against env steps and against labels used; tables with mean and spread over seeds; the safe-MPC games; the
performance ratios). ``--jobs N`` runs entries in N worker processes, ``--executor ray --address ...`` on a Ray
cluster (performance entries run after the rest, one at a time in this process, so that nothing shares the
machine while they time); ``--resume`` skips the entries a folder already holds; ``--only`` and ``--tasks``
filter.

Methods (an entry's ``method:``): the baselines ``env`` (SAC/PPO on the env's own reward) and ``random`` (uniform
random actions, no training), ``perf`` (one of :mod:`robofeedback.bench.perf`'s measures), and every method in
:mod:`robofeedback.registry` that has a bench section (``robofeedback bench --help`` lists them).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import re
import shlex
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from robofeedback import registry
from robofeedback.bench import aggregate
from robofeedback.bench.aggregate import (
    BAND_REPS,
    aggregate_table,
    cell,
    improvement_table,
    interval,
    plot_profiles,
    plot_reward_metrics,
)
from robofeedback.bench.common import read_results
from robofeedback.bench.perf import MEASURES
from robofeedback.config import config_dir, deep_merge, load_yaml, run_metadata
from robofeedback.envs import make
from robofeedback.methods.bench import EntryError, mean_spread, train_entry
from robofeedback.parallel import LocalExecutor, add_executor_arguments, make_executor
from robofeedback.rl.plots import save_figure, task_panels
from robofeedback.rl.train import evaluate
from robofeedback.seeding import stream_seed

BASELINES = {"env": "true reward", "random": "random actions"}
RESULTS = "results.jsonl"
COMMAND = "command.txt"  # the command line that ran the suite, which the report names


class SuiteError(EntryError):
    """A suite file that cannot be run as written."""


def method_names() -> list[str]:
    """What an entry's ``method:`` may be: the baselines, the registered methods with a bench section, ``perf``."""
    return [*BASELINES, *registry.names("bench"), "perf"]


def trains(method: str) -> bool:
    """Whether a registered method's entries train policies (and get the suite's ``train:`` settings)."""
    return registry.get(method).trains_policies


def label(method: str) -> str:
    """How the report names a method."""
    return BASELINES[method] if method in BASELINES else registry.get(method).label


def suite_path(name: str | Path) -> Path:
    """A suite by name (``configs/bench/suites/<name>.yaml``) or by path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = config_dir() / "bench" / "suites" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SuiteError(f"no suite {name!r}: known suites are {', '.join(known)} (or give a .yaml path)")
    return path


def variant(entry: dict[str, Any]) -> str:
    """What sets an entry apart from others of its method and task: its ``name``, or its measure, study arm,
    teacher, proposer, lower level, label budget and constraint variant."""
    if entry.get("name") or entry.get("measure"):
        return entry.get("name") or entry["measure"]
    parts = [str(entry[k]) for k in ("arm", "teacher", "proposer", "updater") if k in entry]
    parts += [f"{entry['budget']} labels"] if "budget" in entry else []
    parts += ["misspecified"] if entry.get("misspecified") else []
    return ", ".join(parts)


def entry_id(entry: dict[str, Any]) -> str:
    """What names an entry in results and on resume: method, task, variant and seed."""
    return "|".join(str(p) for p in (entry["method"], entry["task"], variant(entry), f"seed{entry['seed']}"))


def expand(
    suite: dict[str, Any], only: list[str] | None = None, tasks: list[str] | None = None, seeds: int | None = None
) -> list[dict]:
    """The suite's entries, one per seed (an entry's ``seeds:`` overrides the suite's, and ``seeds`` given here,
    seeds 0 to ``seeds`` - 1, overrides both; ``perf`` runs once) and per label budget (``budget:`` may be a
    list), with the suite's ``train:`` settings under each entry's ``config:``, kept to ``only`` methods and
    ``tasks``."""
    if seeds is not None and seeds < 1:
        raise SuiteError(f"--seeds must be >= 1, got {seeds}")
    if not isinstance(suite.get("entries"), list) or not suite["entries"]:
        raise SuiteError("a suite needs a non-empty list of entries")
    known = method_names()
    for name in only or []:
        if name not in known:
            raise SuiteError(f"--only names unknown method {name!r}: choose from {', '.join(known)}")
    out, seen = [], set()
    for i, raw in enumerate(suite["entries"]):
        if not isinstance(raw, dict) or raw.get("method") not in known:
            raise SuiteError(f"entry {i} needs a method, one of {', '.join(known)}; got {raw!r}")
        entry = copy.deepcopy(raw)
        if entry["method"] == "perf":
            entry.setdefault("task", "perf")
            if "measure" not in entry:
                raise SuiteError(f"perf entry {i} needs a measure")
        elif "task" not in entry:
            raise SuiteError(f"entry {i} ({entry['method']}) needs a task")
        if entry["method"] == "env" or entry["method"] in registry.names("bench") and trains(entry["method"]):
            entry["config"] = deep_merge(copy.deepcopy(suite.get("train", {})), entry.get("config", {}))
        if only and entry["method"] not in only or tasks and entry["task"] not in tasks:
            continue
        own = entry.pop("seeds", suite.get("seeds", [0]))
        runs = [0] if entry["method"] == "perf" else range(seeds) if seeds is not None else own
        budgets = entry.pop("budget") if isinstance(entry.get("budget"), list) else [entry.get("budget")]
        for budget in budgets:
            for seed in runs:
                one = {**entry, "seed": int(seed), **({"budget": budget} if budget is not None else {})}
                key = entry_id(one)
                if key in seen:
                    raise SuiteError(f"two entries are both {key}: give one a name:")
                seen.add(key)
                out.append(one)
    return out


# -- running one entry ---------------------------------------------------------------------------------------


def run_env(entry, folder, executor):
    return train_entry(entry, folder, "env")


def run_random(entry, folder, executor):
    env = make(entry["task"], seed=entry["seed"], **entry.get("env_kwargs", {}))
    env.action_space.seed(entry["seed"])
    result = evaluate(None, env, entry.get("episodes", 20), seed=stream_seed(entry["seed"], "eval"))
    env.close()
    point = {"steps": 0, "success_rate": result.get("success_rate"), "mean_env_return": result["mean_env_return"]}
    return {"steps": 0, **{k: v for k, v in point.items() if k != "steps"}, "curve": [point]}


def run_perf(entry, folder, executor):
    if entry["measure"] not in MEASURES:
        raise SuiteError(f"unknown perf measure {entry['measure']!r}: choose from {', '.join(MEASURES)}")
    return MEASURES[entry["measure"]](**entry.get("params", {}))


def runner(method: str) -> Callable:
    """What runs an entry of ``method``: a baseline's runner, ``perf``'s, or the registered method's bench."""
    own = {"env": run_env, "random": run_random, "perf": run_perf}
    return own[method] if method in own else registry.get(method).bench


def entry_folder(out: Path, entry: dict[str, Any]) -> Path:
    """``out/runs/<entry id>``, with the id's separators and spaces made safe for a folder name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", entry_id(entry).replace("|", "_"))
    return Path(out) / "runs" / name


def run_entry(job: tuple[dict[str, Any], str, dict[str, Any]]) -> dict[str, Any]:
    """Run one entry in a fresh folder under ``out/runs``; returns its result row (or the error it raised, so one
    failing entry does not stop the suite). The job names the suite's executor, where ICPL trains its candidates."""
    entry, out, executor_spec = job
    torch.set_num_threads(1)
    folder = entry_folder(Path(out), entry)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    meta = run_metadata()
    start = time.time()
    row = {"id": entry_id(entry), "method": entry["method"], "task": entry["task"], "seed": entry["seed"]}
    # Inside a Ray task the candidates go to the same cluster; local entries already fill the worker processes.
    executor = make_executor(**executor_spec) if executor_spec["kind"] == "ray" else LocalExecutor(1)
    try:
        with executor:
            row.update(runner(entry["method"])(entry, folder, executor))
        row["status"] = "ok"
    except Exception as error:  # reported in the row and the report, and the suite goes on
        row.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
    (folder / "progress.json").unlink(missing_ok=True)
    row.update(
        started_at=round(start, 1),
        wall_time_s=round(time.time() - start, 1),
        git_commit=meta["git_commit"],
        git_dirty=meta["git_dirty"],
        config=entry,
        executor=executor_spec["kind"],
        folder=str(folder),
    )
    return row


# -- the suite -----------------------------------------------------------------------------------------------


def _describe_running(out: Path, done: set[str], entries: list[dict]) -> str:
    parts = []
    for entry in entries:
        path = entry_folder(out, entry) / "progress.json"
        if entry_id(entry) in done or not path.exists():
            continue
        try:
            progress = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        parts.append(f"{entry['method']}/{entry['task']}/s{entry['seed']} {progress['done']}/{progress['total']}")
    return "; ".join(parts)


def run_suite(
    suite: dict[str, Any],
    out: str | Path,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    only: list[str] | None = None,
    tasks: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    seeds: int | None = None,
) -> list[dict[str, Any]]:
    """Run the suite's entries into ``out`` (``seeds``: see :func:`expand`); returns every row
    ``out/results.jsonl`` then holds. Without ``resume`` a folder with results is refused; with it, finished
    entries are kept and only the rest run."""
    out = Path(out)
    entries = expand(suite, only, tasks, seeds)
    rows = read_results(out)
    if rows and not resume:
        raise SuiteError(f"{out / RESULTS} already holds results: pass --resume to continue it, or another --out")
    finished = {r["id"] for r in rows if r.get("status") == "ok"}
    todo = [e for e in entries if entry_id(e) not in finished]
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(suite, indent=2))
    spec = {"kind": executor, "jobs": jobs, "address": address}
    done: set[str] = set()
    bar = tqdm(
        total=len(entries),
        initial=len(entries) - len(todo),
        desc=f"suite {suite.get('name', '')}",
        unit="entry",
        disable=not progress,
    )
    stop = threading.Event()

    def refresh() -> None:  # each running entry's env steps, every two seconds
        while not stop.wait(2.0):
            bar.set_postfix_str(_describe_running(out, done, todo)[:120], refresh=True)

    watcher = threading.Thread(target=refresh, daemon=True)
    watcher.start()

    def finished(row: dict[str, Any]) -> None:
        with open(out / RESULTS, "a") as f:
            f.write(json.dumps(row) + "\n")
        done.add(row["id"])
        bar.update(1)
        summary = f"success {row.get('success_rate')}" if row["status"] == "ok" else row["error"][:100]
        bar.write(f"{row['id']}: {row['status']}, {summary}, {row['wall_time_s']} s")

    # Performance measures run last, one at a time, here: nothing else may share the machine while they time.
    learning = [e for e in todo if e["method"] != "perf"]
    try:
        if learning:
            with make_executor(executor, jobs, address) as pool:
                for _, row in pool.imap_unordered(run_entry, [(e, str(out), spec) for e in learning]):
                    finished(row)
        for entry in (e for e in todo if e["method"] == "perf"):
            finished(run_entry((entry, str(out), {**spec, "kind": "local"})))
    finally:
        stop.set()
        bar.close()
    return latest(read_results(out))


def latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row per entry id (a resumed suite appends a rerun after the failed one)."""
    by_id = {r["id"]: r for r in rows}
    return list(by_id.values())


# -- the report ----------------------------------------------------------------------------------------------


REPLAY_LABEL = "hand-written replay, not a model"


def _method_label(row: dict[str, Any]) -> str:
    """A row's method as the report shows it; a proposer or lower level served from ``assets/`` says what it is."""
    parts = variant(row["config"]).split(", ")
    name = ", ".join(REPLAY_LABEL if part == "replay" else part for part in parts if part)
    return label(row["method"]) + (f" ({name})" if name else "")


def _budget(row: dict[str, Any]) -> str:
    if "budget" in row["config"]:
        return str(row["config"]["budget"])
    return "-"


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        groups.setdefault((row["task"], _method_label(row)), []).append(row)
    return groups


def _plot_curves(rows: list[dict[str, Any]], path: Path, x: str) -> Path | None:
    """Per task: success rate (or env return where the task has no success) against ``x`` (steps or labels), one
    line per method: at each evaluation, the IQM over seeds (at the seeds' mean ``x``) with its 95% interval."""
    rows = [r for r in rows if r.get("curve") and (x == "steps" or any("labels" in c for c in r["curve"]))]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    if not tasks:
        return None
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        has_success = all(c.get("success_rate") is not None for r in task_rows for c in r["curve"])
        metric = "success_rate" if has_success else "mean_env_return"
        for (_, label), group in _groups(task_rows).items():
            points = []  # per evaluation: the seeds' x and metric
            for r in group:
                usable = [c for c in r["curve"] if c.get(metric) is not None and c.get(x) is not None]
                for i, c in enumerate(usable):
                    if i == len(points):
                        points.append(([], []))
                    points[i][0].append(c[x])
                    points[i][1].append(c[metric])
            xs = [float(np.mean(p[0])) for p in points]
            bands = [interval(np.array(p[1])[:, None], reps=BAND_REPS) for p in points]
            if len(xs) == 1 and x == "steps" and xs[0] == 0:  # no training (random actions): a level line
                ax.axhline(bands[0][0], color="grey", ls=":", label=label)
                continue
            seeds = f"{len(group)} seed{'s' * (len(group) > 1)}"
            (line,) = ax.plot(xs, [b[0] for b in bands], marker="o", ms=3, label=f"{label} ({seeds})")
            ax.fill_between(xs, [b[1] for b in bands], [b[2] for b in bands], color=line.get_color(), alpha=0.15)
        ax.set_title(task)
        ax.set_xlabel("env steps" if x == "steps" else "labels used")
        ax.set_ylabel("success rate" if metric == "success_rate" else "env return")
        if metric == "success_rate":
            ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False)
    fig.set_figheight(5.5)
    return save_figure(fig, path, dpi=90)


def _metric(group: list[dict[str, Any]], key: str) -> str:
    return cell([r.get("reward_metrics", {}).get(key) for r in group])


def _task_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| task | method | label budget | seeds | env steps | labels used | success | env return "
        "| pref. accuracy | rank corr. | EPIC | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, label), group in _groups(rows).items():
        cells = [
            task,
            label,
            _budget(group[0]),
            ", ".join(str(r["seed"]) for r in group),
            mean_spread([r.get("steps") for r in group], 0),
            mean_spread([r.get("labels") for r in group], 0),
            cell([r.get("success_rate") for r in group]),
            cell([r.get("mean_env_return") for r in group], 1),
            _metric(group, "pref_accuracy"),
            _metric(group, "rank_correlation"),
            _metric(group, "epic_distance"),
            mean_spread([r["wall_time_s"] for r in group], 0) + " s",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _perf_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| measure | value | against | ratio |", "|---|---|---|---|"]
    for r in rows:
        if r["measure"] == "wrapper_steps":
            for name, m in r["modules"].items():
                lines.append(
                    f"| env steps/s wrapped, {name} | {m['steps_per_s']} steps/s | {m['unwrapped_steps_per_s']} "
                    f"steps/s unwrapped | {m['ratio']} |"
                )
            continue
        lines.append(
            f"| {r['what']} | {r['value']} {r['unit']} | {r['reference']} {r['reference_unit']} | {r['ratio']} |"
        )
    return lines


def _elapsed(rows: list[dict[str, Any]]) -> float:
    """Seconds from the first entry's start to the last one's end."""
    return max(r["started_at"] + r["wall_time_s"] for r in rows) - min(r["started_at"] for r in rows)


def _changes(base: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``config`` that are not as in ``base``."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            if changed := _changes(base[key], value):
                out[key] = changed
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def _learning_section(rows: list[dict[str, Any]], out: Path) -> list[str]:
    """The reward-learning tables and plots: per task, across tasks, against the baselines."""
    groups = _groups(rows)
    lines = [
        "## Reward learning",
        "",
        "Final evaluation (deterministic policy, the env's own reward and success). Success and env return: IQM "
        "over seeds [95% stratified bootstrap CI] (rliable; with 3 seeds the IQM is the mean). Reward-model "
        "metrics, for every learned or zero-shot reward, against the env's reward on coverage episodes (half the "
        "trained policy acting stochastically, half random actions; `robofeedback.rewards.metrics`): held-out "
        "segment-pair preference accuracy, Spearman rank correlation with the true return per episode, EPIC "
        "distance (0: the same reward up to shaping and scale; 0.71: unrelated; 1: opposite).",
        "",
        *_task_table(rows),
        "",
        "### Across tasks",
        "",
        aggregate.EXPLAINED,
        "",
        *aggregate_table(groups),
        "",
        "Probability of improvement over the baselines on the tasks they share:",
        "",
        *improvement_table(groups),
        "",
    ]
    plots = (
        (_plot_curves(rows, out / "curves_steps.png", "steps"), "success rate against env steps"),
        (_plot_curves(rows, out / "curves_labels.png", "labels"), "success rate against labels used"),
        (plot_profiles(groups, out / "profiles.png"), "performance profiles"),
        (plot_reward_metrics(groups, out / "reward_metrics.png"), "reward-model metrics"),
    )
    for plot, caption in plots:
        if plot is not None:
            lines += [f"![{caption}]({plot.name})", ""]
    return lines


def report(rows: list[dict[str, Any]], out: Path, suite: dict[str, Any]) -> Path:
    """``out/REPORT.md`` and its plots, from ``rows`` (in the suite's order and then by seed, whatever order they
    finished in)."""
    out = Path(out)
    order = {entry_id(e).rsplit("|", 1)[0]: i for i, e in reversed(list(enumerate(expand(suite))))}
    rows = sorted(rows, key=lambda r: (order.get(r["id"].rsplit("|", 1)[0], len(order)), r["seed"]))
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    learning = [r for r in ok if r["method"] != "perf" and "mean_env_return" in r]
    commits = sorted({f"{r['git_commit']}{' (with changes)' if r['git_dirty'] else ''}" for r in rows})
    lines = [
        f"# robofeedback benchmark: {suite.get('name', 'suite')}",
        "",
        suite.get("description", "").strip(),
        "",
        f"{len(ok)} entries finished, {len(failed)} failed; code {', '.join(commits)}; "
        f"{sum(r['wall_time_s'] for r in rows) / 60:.1f} min of entry time in {_elapsed(rows) / 60:.1f} min "
        f"({', '.join(sorted({r['executor'] for r in rows}))} executor). Each entry's seed, commit and config are "
        "in `results.jsonl` and in the provenance table of `REPORT.md`."
        + (f" Command: `{(out / COMMAND).read_text().strip()}`." if (out / COMMAND).exists() else ""),
        "",
    ]
    if learning:
        lines += _learning_section(learning, out)
    for method in dict.fromkeys(r["method"] for r in ok):
        own = registry.get(method).report if method not in (*BASELINES, "perf") else None
        if own is not None:
            lines += own([r for r in ok if r["method"] == method])
    perf = [r for r in ok if r["method"] == "perf"]
    if perf:
        lines += ["## Performance", "", "Each ratio is of two rates measured in the same run.", ""]
        lines += [*_perf_table(perf), ""]
    if failed:
        lines += ["## Failed entries", ""] + [f"- `{r['id']}`: {r['error']}" for r in failed] + [""]
    lines += [
        "## Provenance",
        "",
        f"Every learning entry trains with the suite's settings `{json.dumps(suite.get('train', {}))}` under its "
        "own (shown here where they differ).",
        "",
        "| entry | seed | commit | config |",
        "|---|---|---|---|",
    ]
    for r in rows:
        config = {k: v for k, v in r["config"].items() if k not in ("method", "task", "seed")}
        if "config" in config:
            config["config"] = _changes(suite.get("train", {}), config["config"])
        lines.append(f"| `{r['id']}` | {r['seed']} | {str(r['git_commit'])[:10]} | `{json.dumps(config)}` |")
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


README_START, README_END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def readme_section(report_path: Path, readme_dir: Path) -> str:
    """What goes between the README's results markers: the report (``<folder>/REPORT.md``) up to its provenance
    table, its plots linked in the folder, and where its figures come from."""
    report_path = Path(report_path).resolve()
    folder = report_path.parent.relative_to(Path(readme_dir).resolve())
    body = report_path.read_text().split("\n## Provenance")[0].split("\n", 1)[1]
    for png in sorted(report_path.parent.glob("*.png")):
        body = body.replace(f"]({png.name})", f"]({folder / png.name})")
    body = body.replace("\n## ", "\n#### ").replace("\n### ", "\n##### ")
    source = (
        f"These figures are [{folder / RESULTS}]({folder / RESULTS}), rendered by the suite's report into "
        f"[{folder / 'REPORT.md'}]({folder / 'REPORT.md'}) (each entry's seed, commit and config are there); "
        "`tests/test_readme.py` fails when this section, that report and those results disagree."
    )
    return body.strip() + "\n\n" + source + "\n"


def update_readme(readme: Path, report_path: Path, folder: Path) -> None:
    """Copy the report, its results, suite, command and plots into ``folder`` (in the repository, where they are
    kept: ``runs/`` is not) and put :func:`readme_section` between the README's results markers."""
    readme, report_path, folder = Path(readme).resolve(), Path(report_path), Path(folder).resolve()
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SuiteError(f"{readme} has no {README_START} ... {README_END} markers for the results")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("REPORT.md", RESULTS, "suite.json", COMMAND):
        if (report_path.parent / name).exists():
            shutil.copy(report_path.parent / name, folder / name)
    for png in report_path.parent.glob("*.png"):
        shutil.copy(png, folder / png.name)
    section = readme_section(folder / "REPORT.md", readme.parent)
    head, rest = text.split(README_START, 1)
    readme.write_text(head + README_START + "\n" + section + README_END + rest.split(README_END, 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="quick", help="'quick', 'full' or a suite .yaml (default quick)")
    parser.add_argument("--out", default=None, help="output folder (default runs/bench/<date>)")
    parser.add_argument("--only", nargs="+", metavar="METHOD", help=f"only these methods ({', '.join(method_names())})")
    parser.add_argument("--tasks", nargs="+", help="only entries on these tasks")
    parser.add_argument(
        "--seeds", type=int, default=None, metavar="N", help="every entry with seeds 0 .. N-1 (default: the suite's)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="entries run at once: worker processes, or the CPUs of a Ray instance started here (default: the "
        "machine's CPU count)",
    )
    add_executor_arguments(parser, "entries")
    parser.add_argument("--resume", action="store_true", help="continue a run in --out, keeping finished entries")
    parser.add_argument("--readme", default=None, help="also write the results into this README's results section")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _command(args: argparse.Namespace) -> str:
    """The ``robofeedback bench`` command line that chooses what ran (where it went and how it showed aside)."""
    parts = ["robofeedback", "bench", "--suite", str(args.suite)]
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs), ("--executor", args.executor)):
        if value is not None and (flag, value) != ("--executor", "local"):
            parts += [flag, str(value)]
    for flag, values in (("--only", args.only), ("--tasks", args.tasks)):
        parts += [flag, *values] if values else []
    return " ".join(shlex.quote(p) for p in parts)


def run_command(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise SuiteError(f"--jobs must be >= 1, got {args.jobs}")
    suite = load_yaml(suite_path(args.suite))
    out = Path(args.out or f"runs/bench/{datetime.date.today().isoformat()}")
    out.mkdir(parents=True, exist_ok=True)
    (out / COMMAND).write_text(_command(args) + "\n")
    rows = run_suite(
        suite,
        out,
        args.executor,
        args.jobs,
        args.address,
        args.only,
        args.tasks,
        args.resume,
        not args.no_progress,
        args.seeds,
    )
    path = report(rows, out, suite)
    print(f"report: {path}")
    if args.readme:
        folder = Path(args.readme).resolve().parent / "docs" / "results" / suite.get("name", out.name)
        update_readme(Path(args.readme), path, folder)
        print(f"results section written to {args.readme}")
    failed = [r["id"] for r in rows if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} entries failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
