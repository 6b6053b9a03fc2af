"""The demo, measured: ``robofeedback demo --auto`` over seeds and scripted teachers.

``python -m robofeedback.bench.demo [--seeds 0 1 2] [--teachers oracle mistake] [--jobs 2]`` runs the whole demo
(the app on a free port, the scripted teacher answering through its HTTP endpoints, SAC on panda reach, the
evaluation, the true-reward comparison) once per teacher and seed, each as its own process with its own store, and
keeps each run's ``demo.json`` as a line of ``results.jsonl`` with its wall time (a rerun skips what is done).
``REPORT.md`` has success, labels and time per teacher against the demo's targets (success 0.9 with the Oracle
and 0.8 with Mistake(0.1), at most 100 labels and 10 minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from robofeedback.bench.common import read_results, run_entries
from robofeedback.config import run_metadata
from robofeedback.methods.bench import mean_spread

TARGETS = {"oracle": 0.9, "mistake": 0.8}


def run_entry(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """One ``robofeedback demo --auto`` run as a child process; its ``demo.json`` with the wall time and commit."""
    entry, out_root = args
    out = Path(out_root) / "runs" / f"{entry['teacher']}-{entry['seed']}"
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "robofeedback.cli", "demo", "--auto", "--teacher", entry["teacher"]]
    command += ["--seed", str(entry["seed"]), "--port", "0", "--out", str(out), "--store", str(out / "feedback.db")]
    start, meta = time.time(), run_metadata()
    with open(out / "demo.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}; see {out / 'demo.log'}")
    row = json.loads((out / "demo.json").read_text())
    return {
        **row,
        "teacher": entry["teacher"],
        "process_wall_time_s": round(time.time() - start, 1),
        "out_dir": str(out),
        **{key: meta[key] for key in ("git_commit", "git_dirty")},
    }


def report(rows: list[dict[str, Any]], out: Path) -> Path:
    """``REPORT.md``: per teacher, success (mean ± std over seeds), labels, time, and the true reward's success."""
    lines = [
        "# The demo, measured (`python -m robofeedback.bench.demo`)",
        "",
        "`robofeedback demo --auto` on panda:PandaReachDense-v3 with `configs/demo.yaml`: a scripted teacher answers",
        "through the app's HTTP endpoints; success over the demo's evaluation episodes after its env steps. The",
        "true reward column is SAC on the env's own reward with the same steps and seed (the demo's comparison).",
        "Wall time is the demo's own, from start to the printed summary before the comparison run.",
        "",
        "| teacher | seeds | labels | success | target | true reward | demo wall time | commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for teacher in dict.fromkeys(r["teacher"] for r in rows):
        mine = sorted((r for r in rows if r["teacher"] == teacher), key=lambda r: r["seed"])
        commits = ", ".join(sorted({(r.get("git_commit") or "?")[:7] for r in mine}))
        each = ", ".join(f"{r['success_rate']:.2f}" for r in mine)
        lines.append(
            f"| {teacher} | {', '.join(str(r['seed']) for r in mine)} | {mean_spread([r['labels'] for r in mine], 0)} "
            f"| {mean_spread([r['success_rate'] for r in mine])} "
            f"({each}) | {TARGETS.get(teacher, '-')} "
            f"| {mean_spread([r.get('true_reward_success_rate') for r in mine])} "
            f"| {mean_spread([r['wall_time_s'] for r in mine], 0)} s | {commits} |"
        )
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--teachers", nargs="*", default=["oracle", "mistake"], choices=sorted(TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="demos in parallel")
    parser.add_argument("--out", default="runs/bench/demo")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {(r["teacher"], r["seed"]) for r in read_results(out)}
    todo = [{"teacher": t, "seed": s} for t in args.teachers for s in args.seeds if (t, s) not in done]
    print(f"{len(todo)} demo runs to do ({len(done)} already in {out / 'results.jsonl'})", flush=True)
    run_entries(run_entry, todo, out, args.jobs, _describe)
    path = report(read_results(out), out)
    print(path.read_text())
    return path


def _describe(row: dict[str, Any]) -> str:
    return (
        f"{row['teacher']} seed {row['seed']}: success {row['success_rate']:.2f}, {row['labels']} labels, "
        f"{row['wall_time_s']} s"
    )


if __name__ == "__main__":
    main()
