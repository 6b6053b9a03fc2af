"""Preference learning against the true reward: success rate vs labels, per method and teacher, at equal env steps.

``python -m robofeedback.bench.preference [--config configs/bench/preference.yaml] [--jobs 2]`` trains,
for every task, seed, method, teacher and label budget in the config, SAC on a reward learned from that
teacher's preferences, and SAC on the env's own reward with the same steps. A method is a set of
settings of the reward model and the feedback loop (PEBBLE as it was, each feedback-efficiency option
alone, their combination). Each finished run is a line of ``results.jsonl``: a rerun resumes, skipping
what is there, so a long grid runs in pieces. The bench writes ``REPORT.md`` with the table, the labels
each method needs to come within 10 points of the true reward, and ``success_vs_labels.png`` (mean and
spread over seeds). It also measures each learned reward's label accuracy on 500 fresh segment pairs
(from the final policy and from random actions) labelled by the Oracle, and how much longer 1000 env
steps took in the last feedback round than in the first.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.bench.common import (
    config_arguments,
    load_spec,
    mean_spread,
    read_results,
    report_footer,
    run_entries,
)
from robofeedback.config import deep_merge, run_metadata

# Matplotlib's tab10 colours, then five more that stay apart from them, so that up to 15 methods get their own.
PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#000080", "#808000", "#00ced1", "#ff1493", "#a0522d"),
)


def entries(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a bench config asks for: per task and seed, the true-reward baseline and method x teacher x budget (a
    task's own `seeds:`, `budgets:` and `methods:` (names) override the top-level ones; a teacher's `seeds:` keeps
    only those of the task's seeds for it; a task's `rounds:`, default 10, is how many feedback rounds share each
    budget). `methods:` maps a name to its `preference:` and `feedback:` settings (default: `pebble`, none)."""
    methods = spec.get("methods") or {"pebble": {}}
    out = []
    for task, settings in spec["tasks"].items():
        for seed in settings.get("seeds", spec["seeds"]):
            base = {
                "task": task,
                "seed": seed,
                "steps": settings["steps"],
                "rounds": settings.get("rounds", 10),
                "config": settings.get("config", {}),
            }
            out.append({**base, "method": "true reward", "teacher": None, "budget": 0})
            for method in settings.get("methods", list(methods)):
                if method not in methods:
                    raise ValueError(f"task {task} names method {method!r}, which `methods:` does not define")
                for teacher, params in spec["teachers"].items():
                    params = dict(params)
                    if seed not in params.pop("seeds", [seed]):  # a teacher may run on fewer seeds than the task
                        continue
                    for budget in settings.get("budgets", spec["budgets"]):
                        out.append(
                            {
                                **base,
                                "method": method,
                                "settings": methods[method] or {},
                                "teacher": teacher,
                                "params": params,
                                "budget": budget,
                            }
                        )
    return out


def entry_key(entry: dict[str, Any]) -> str:
    return f"{entry['task']}|{entry['method']}|{entry['teacher']}|{entry['budget']}|{entry['seed']}"


def heldout_accuracy(out_dir: Path, task: str, config: dict, model, seed: int, n_pairs: int = 500) -> float:
    """Oracle-label accuracy of the run's final reward model on fresh pairs from the final policy and random
    actions (segments as long as the run's)."""
    from robofeedback.envs import make
    from robofeedback.rewards.preference import PreferenceReward, fresh_pair_accuracy
    from robofeedback.rl.train import family_of, load_train_config

    cfg = load_train_config(family_of(task), "sac", 1, config)
    env_kwargs = {**cfg.env_kwargs, **({"flatten": True} if family_of(task) == "panda" else {})}
    env = make(task, seed=seed + 50_000, **env_kwargs)
    reward_model = PreferenceReward.load(out_dir / "checkpoints" / "reward_model.pt")
    length = cfg.feedback.get("segment_length", 50)
    return fresh_pair_accuracy(reward_model, env, model, length, n_pairs, seed=seed + 50_000)


def run_entry(entry: dict[str, Any], out_root: str) -> dict[str, Any]:
    """Train one entry and return its result row."""
    import torch

    from robofeedback.feedback.teachers import make_teacher
    from robofeedback.rl.train import train

    torch.set_num_threads(1)
    name = entry_key(entry).replace("|", "_").replace(":", "-").replace(" ", "-")
    out_dir = Path(out_root) / "runs" / name
    config = dict(entry["config"])
    feedback = None
    if entry["method"] != "true reward":
        budget = entry["budget"]
        per_round = math.ceil(budget / entry["rounds"])
        config = deep_merge(deep_merge(config, entry.get("settings", {})), {"feedback": {"budget": budget}})
        config = deep_merge(config, {"feedback": {"labels_per_round": per_round}})
        feedback = make_teacher(entry["teacher"], seed=entry["seed"], **entry.get("params", {}))
    start, meta = time.time(), run_metadata()
    result = train(
        entry["task"],
        reward="preference" if feedback else "env",
        feedback=feedback,
        algo="sac",
        total_steps=entry["steps"],
        seed=entry["seed"],
        out_dir=out_dir,
        config=config,
        resume=False,
        progress=False,
        method_defaults=False,
    )
    row = {
        **{k: entry[k] for k in ("task", "method", "teacher", "budget", "seed", "steps")},
        "success_rate": result.final_eval.get("success_rate"),
        "mean_env_return": result.final_eval["mean_env_return"],
        "wall_time_s": round(time.time() - start, 1),
        "out_dir": str(out_dir),
        "curve": [json.loads(line) for line in (out_dir / "eval.jsonl").read_text().splitlines()],
        **{key: meta[key] for key in ("git_commit", "git_dirty")},
    }
    if feedback is not None:
        row["labels"] = result.feedback["labels"]
        row["round_cost"] = round_cost(out_dir / "feedback.jsonl")
        row["reward_accuracy_last_round"] = result.feedback.get("heldout_accuracy")
        row["reward_accuracy_fresh_pairs"] = heldout_accuracy(
            out_dir, entry["task"], config, result.model, entry["seed"]
        )
    return row


def round_cost(log: Path) -> dict[str, float] | None:
    """Wall seconds per 1000 env steps between the first two feedback rounds that asked for labels and between the
    last two (from the loop's ``feedback.jsonl``), and their ratio; None with fewer than three such rounds."""
    rounds = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rounds = [r for r in rounds if "wall_time_s" in r and r.get("queries")]  # rounds that asked and retrained
    if len(rounds) < 3:
        return None

    def per_1000(a: dict, b: dict) -> float:
        return 1000 * (b["wall_time_s"] - a["wall_time_s"]) / max(b["steps"] - a["steps"], 1)

    first, last = per_1000(rounds[0], rounds[1]), per_1000(rounds[-2], rounds[-1])
    return {"first_s": round(first, 2), "last_s": round(last, 2), "ratio": round(last / first, 2)}


def _selected(entry: dict[str, Any], args) -> bool:
    """Whether ``entry`` is in the piece of the grid that ``--methods``, ``--budgets``, ``--teachers`` and
    ``--seeds`` ask for (the true-reward runs are in every piece of methods, budgets and teachers)."""
    if args.seeds and entry["seed"] not in args.seeds:
        return False
    if entry["method"] == "true reward":
        return True
    return (
        (not args.methods or entry["method"] in args.methods)
        and (not args.budgets or entry["budget"] in args.budgets)
        and (not args.teachers or entry["teacher"] in args.teachers)
    )


def _run(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    return run_entry(*args)


def _describe(row: dict[str, Any]) -> str:
    return f"{entry_key(row)}: success {row['success_rate']}, labels {row.get('labels', '-')}, {row['wall_time_s']} s"


LATE_EVALS = 3


def late_success(row: dict[str, Any]) -> float | None:
    """Mean success rate over a run's last ``LATE_EVALS`` evaluations: less noisy than the final one alone."""
    values = [c["success_rate"] for c in row["curve"][-LATE_EVALS:] if c.get("success_rate") is not None]
    return float(np.mean(values)) if values else None


WITHIN = 0.10  # the headline: labels needed to come within this much success of the true reward


def labels_needed(rows: list[dict[str, Any]], true_success: float) -> int | None:
    """The smallest budget whose mean late success over seeds is within ``WITHIN`` of ``true_success`` (None when
    no budget run is)."""
    for budget in sorted({r["budget"] for r in rows}):
        if np.mean([r["late_success"] for r in rows if r["budget"] == budget]) >= true_success - WITHIN:
            return budget
    return None


def report(rows: list[dict[str, Any]], out: Path, spec: dict[str, Any]) -> Path:
    """A Markdown table, the labels-needed headline and a success-vs-labels plot per task."""
    from robofeedback.rl.plots import save_figure, task_panels

    rows = [{**r, "late_success": late_success(r)} for r in rows]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = task_panels(tasks)
    fig.set_size_inches(8.5 * len(tasks), 4.5)  # room for the legend beside each panel
    headline = [
        f"Labels needed to come within {WITHIN * 100:.0f} points of SAC on the true reward (mean success over the "
        f"last {LATE_EVALS} evaluations and over seeds; '> B' where no budget up to B did):",
        "",
        "| task | method | teacher | labels needed | true reward |",
        "|---|---|---|---|---|",
    ]
    lines = [
        "",
        "Success rate on the final evaluation (the task's eval_episodes) after the same env steps, and its mean "
        f"over the last {LATE_EVALS} evaluations (plotted, with the spread over seeds); mean over seeds (± std where "
        "more than one). Cost: wall seconds per 1000 env steps in the last feedback round over the first.",
        "",
        "| task | steps | method | teacher | label budget | seeds | labels used | success | "
        f"success, last {LATE_EVALS} evals | env return | label accuracy (fresh pairs) | cost, last/first round | "
        "wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ax, task in zip(axes, tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        true = [r for r in task_rows if r["method"] == "true reward"]
        true_success = float(np.mean([r["late_success"] for r in true])) if true else None
        if true:
            ax.axhline(true_success, color="black", ls="--", label="SAC, true reward")
        learned = list(dict.fromkeys((r["method"], r["teacher"]) for r in task_rows if r["teacher"]))
        methods = list(dict.fromkeys(method for method, _ in learned))
        teachers = list(dict.fromkeys(teacher for _, teacher in learned))
        for method, teacher in learned:
            runs = [r for r in task_rows if (r["method"], r["teacher"]) == (method, teacher)]
            budgets = sorted({r["budget"] for r in runs})
            values = [[r["late_success"] for r in runs if r["budget"] == b] for b in budgets]
            means, spreads = np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])
            # a colour per method, a line style and marker per teacher
            color = PALETTE[methods.index(method) % len(PALETTE)]
            style = ("-", "--", ":", "-.")[teachers.index(teacher) % 4]
            marker = "os^D"[teachers.index(teacher) % 4]
            ax.plot(budgets, means, color=color, ls=style, marker=marker, label=f"{method}, {teacher}")
            ax.fill_between(budgets, means - spreads, means + spreads, color=color, alpha=0.12)
            if true_success is not None:
                needed = labels_needed(runs, true_success)
                cell = str(needed) if needed is not None else f"> {max(budgets)}"
                headline.append(f"| {task} | {method} | {teacher} | {cell} | {true_success:.2f} |")
        ax.set_title(f"{task} ({task_rows[0]['steps']} steps)")
        ax.set_xlabel("labels")
        ax.set_xscale("log")
        ax.set_ylabel(f"success rate, last {LATE_EVALS} evals")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
        groups: dict[tuple, list] = {}
        for r in task_rows:
            groups.setdefault((r["method"], r["teacher"], r["budget"]), []).append(r)
        # the true reward first, then each method's and teacher's runs by budget
        order = sorted(groups, key=lambda k: (k[0] != "true reward", learned.index(k[:2]) if k[1] else -1, k[2]))
        for (method, teacher, budget), group in ((k, groups[k]) for k in order):
            costs = [(g.get("round_cost") or {}).get("ratio") for g in group]
            cells = [
                task,
                group[0]["steps"],
                method,
                teacher or "-",
                budget or "-",
                len(group),
                mean_spread([g.get("labels") for g in group], 0),
                mean_spread([g.get("success_rate") for g in group]),
                mean_spread([g.get("late_success") for g in group]),
                mean_spread([g.get("mean_env_return") for g in group], 1),
                mean_spread([g.get("reward_accuracy_fresh_pairs") for g in group]),
                mean_spread(costs) + ("x" if any(c is not None for c in costs) else ""),
                mean_spread([g.get("wall_time_s") for g in group], 0) + " s",
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    plot = save_figure(fig, out / "success_vs_labels.png", dpi=100)
    lines += report_footer(plot, "success vs labels", spec)
    path = out / "REPORT.md"
    path.write_text("\n".join(["# Preference learning vs the true reward", "", *headline, *lines]) + "\n")
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = config_arguments(__doc__.split("\n\n")[0], "preference")
    parser.add_argument("--methods", nargs="*", help="only these methods (and the true reward)")
    parser.add_argument("--budgets", nargs="*", type=int, help="only these label budgets (and the true reward)")
    parser.add_argument("--teachers", nargs="*", help="only these teachers (and the true reward)")
    parser.add_argument("--seeds", nargs="*", type=int, help="only these seeds")
    args = parser.parse_args(argv)
    spec, out = load_spec(args)
    done = {entry_key(row) for row in read_results(out)}
    todo = [e for e in entries(spec) if entry_key(e) not in done and _selected(e, args)]
    print(f"{len(todo)} runs to do ({len(done)} already in {out / 'results.jsonl'})", flush=True)
    run_entries(_run, todo, out, args.jobs, _describe)
    path = report(read_results(out), out, spec)
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
