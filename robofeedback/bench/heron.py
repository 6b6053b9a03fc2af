"""HERON against its baselines: env return and success at equal env steps, and where its comparisons are decided.

``python -m robofeedback.bench.heron [--config configs/bench/heron.yaml] [--jobs 2] [--tasks ...]`` trains, for
every task and seed of the config: a policy on the reward HERON learns from the task's factor ranking; on the
weighted-sum heuristic r = sum_l s_l beta^l z_l for each beta of the sweep (first seed), and at the best beta
(later seeds); on PEBBLE-style preferences labelled by the sum of the signed factors (the same pairs, cadence
and reward network as HERON, only the labelling differs); and on the env's own reward. Each finished run is a
line of ``results.jsonl`` (a rerun skips what is there); the bench writes ``REPORT.md`` with a table, the
fraction of HERON's comparisons decided at each level, and ``heron_curves.png`` (env return over training).
"""

from __future__ import annotations

import json
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
from robofeedback.config import run_metadata


def entries(spec: dict[str, Any], done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs still to do: every method on every seed, the heuristic's sweep on a task's first seed and, on the
    later seeds, the heuristic at the best beta of the finished sweep (left for a rerun until the sweep is done)."""
    out = []
    for task, settings in spec["tasks"].items():
        base = {k: settings[k] for k in ("algo", "steps", "factors", "sigma")}
        base.update(task=task, config=settings.get("config", {}))
        seeds = settings["seeds"]
        sweep = [r for r in done if r["task"] == task and r["method"] == "heuristic" and r["seed"] == seeds[0]]
        best = max(sweep, key=lambda r: r["score"])["beta"] if len(sweep) == len(spec["betas"]) else None
        for seed in seeds:
            for method in ("true reward", "heron", "factor-sum preferences"):
                out.append({**base, "seed": seed, "method": method, "beta": None})
            betas = spec["betas"] if seed == seeds[0] else ([best] if best is not None else [])
            out += [{**base, "seed": seed, "method": "heuristic", "beta": beta} for beta in betas]
    return out


def entry_key(entry: dict[str, Any]) -> str:
    return f"{entry['task']}|{entry['method']}|{entry['beta']}|{entry['seed']}"


def run_entry(entry: dict[str, Any], out_root: str) -> dict[str, Any]:
    """Train one entry and return its result row."""
    import torch

    from robofeedback.envs import make
    from robofeedback.rewards.heron import (
        MODEL_DEFAULTS,
        HeuristicReward,
        HierarchicalJudge,
        factor_sum_teacher,
        loop_defaults,
    )
    from robofeedback.rl.train import family_of, load_train_config, train

    torch.set_num_threads(1)
    name = entry_key(entry).replace("|", "_").replace(":", "-").replace(" ", "-")
    out_dir = Path(out_root) / "runs" / name
    factors, config = entry["factors"], dict(entry["config"])
    env = make(entry["task"], seed=entry["seed"], render_size=32)
    signs = [env.factor_info[k].sign for k in factors]
    reward, feedback, judge = "env", None, None
    if entry["method"] == "heron":
        reward = "heron"
        feedback = judge = HierarchicalJudge(factors, signs=signs, sigma=entry["sigma"])
    elif entry["method"] == "factor-sum preferences":  # HERON's loop and network, labels by the sum of factors
        cfg = load_train_config(family_of(entry["task"]), entry["algo"], entry["steps"], config)
        defaults = {**loop_defaults(cfg), "segment_length": 1}
        config = {
            **config,
            "feedback": {**defaults, **config.get("feedback", {})},
            "preference": {**MODEL_DEFAULTS, **config.get("preference", {})},
        }
        reward, feedback = "preference", factor_sum_teacher(factors, signs, seed=entry["seed"])
    elif entry["method"] == "heuristic":
        reward = HeuristicReward(factors, signs, entry["beta"])
    start = time.time()
    result = train(
        entry["task"],
        reward=reward,
        feedback=feedback,
        algo=entry["algo"],
        total_steps=entry["steps"],
        seed=entry["seed"],
        out_dir=out_dir,
        config=config,
        resume=False,
        progress=False,
        method_defaults=False,  # the factor-sum baseline is plain preferences with HERON's network and cadence
    )
    curve = [json.loads(line) for line in (out_dir / "eval.jsonl").read_text().splitlines()]
    success = result.final_eval.get("success_rate")
    return {
        **{k: entry[k] for k in ("task", "method", "beta", "seed", "steps", "algo", "factors", "sigma")},
        "success_rate": success,
        "mean_env_return": result.final_eval["mean_env_return"],
        "score": success if success is not None else result.final_eval["mean_env_return"],
        "levels": judge.level_fractions() if judge is not None else None,
        "labels": (result.feedback or {}).get("labels"),
        "reward_accuracy_last_round": (result.feedback or {}).get("heldout_accuracy"),
        "wall_time_s": round(time.time() - start, 1),
        "curve": curve,
        "git_commit": run_metadata()["git_commit"],
    }


def _run(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    return run_entry(*args)


def _describe(row: dict[str, Any]) -> str:
    return (
        f"{entry_key(row)}: return {row['mean_env_return']:.1f}, success {row['success_rate']}, {row['wall_time_s']} s"
    )


METHOD_ORDER = ["true reward", "heron", "factor-sum preferences", "heuristic"]
CELLS = [("mean_env_return", 1), ("success_rate", 2), ("labels", 0), ("wall_time_s", 0)]  # and their digits


def report(rows: list[dict[str, Any]], out: Path, spec: dict[str, Any]) -> Path:
    from robofeedback.rl.plots import save_figure, task_panels

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = task_panels(tasks)
    lines = [
        "# HERON against its baselines",
        "",
        "Final evaluation after the same env steps (mean over seeds, ± std where more than one); success where "
        "the task defines it. The heuristic is r = sum_l s_l beta^(l-1) z_l over the ranked factors.",
        "",
        "| task | algo | steps | method | seeds | env return | success | labels | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    # the same order in every table and the same colour for a method in every panel, whatever order runs finished in
    kinds = sorted({(r["method"], r["beta"]) for r in rows}, key=lambda k: (METHOD_ORDER.index(k[0]), k[1] or 0))
    colours = {kind: f"C{i}" for i, kind in enumerate(kinds)}
    for ax, task in zip(axes, tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        groups: dict[tuple, list] = {kind: [] for kind in kinds}
        for r in task_rows:
            groups[(r["method"], r["beta"])].append(r)
        for (method, beta), group in ((k, g) for k, g in groups.items() if g):
            label = f"{method} (beta {beta:g})" if beta is not None else method
            steps = [c["steps"] for c in group[0]["curve"]]
            returns = np.mean([[c["mean_env_return"] for c in r["curve"]] for r in group], axis=0)
            ax.plot(steps, returns, marker="o", label=label, color=colours[(method, beta)])
            cells = [mean_spread([r[k] for r in group], d) for k, d in CELLS]
            lines.append(
                f"| {task} | {group[0]['algo']} | {group[0]['steps']} | {label} | {len(group)} "
                f"| {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} s |"
            )
        ax.set(title=task, xlabel="env steps", ylabel="mean env return (eval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    plot = save_figure(fig, out / "heron_curves.png", dpi=100)
    lines += ["", "Where HERON's comparisons were decided (fraction of all its comparisons, mean over seeds):", ""]
    for task in tasks:
        runs = [r for r in rows if r["task"] == task and r["method"] == "heron" and r["levels"]]
        if runs:
            names = list(runs[0]["levels"])
            shares = ", ".join(f"{n}: {np.mean([r['levels'][n] for r in runs]):.2f}" for n in names)
            lines.append(f"- {task} ({', '.join(runs[0]['factors'])}; sigma {runs[0]['sigma']}): {shares}")
    lines += report_footer(plot, "env return over training", spec)
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> Path:
    args = config_arguments(__doc__.split("\n\n")[0], "heron").parse_args(argv)
    spec, out = load_spec(args)
    for _ in range(2):  # the second pass runs the later seeds' heuristic at the sweep's best beta
        rows = read_results(out)
        done = {entry_key(r) for r in rows}
        todo = [e for e in entries(spec, rows) if entry_key(e) not in done]
        print(f"{len(todo)} runs to do ({len(done)} already in {out / 'results.jsonl'})", flush=True)
        if not todo:
            break
        run_entries(_run, todo, out, args.jobs, _describe)
    path = report(read_results(out), out, spec)
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
