"""Safe MPC's bench entries: one game and variant with the simulated human, and the report's table of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robofeedback.bench.safety import first_reached, game_row


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """``trials`` trials of ``attempts`` each on the entry's game (``misspecified`` puts the true constraint
    outside the hypothesis box); seed s runs the trial seeds s * trials ... (s + 1) * trials - 1."""
    game, trials = entry["task"].removeprefix("safety:"), entry.get("trials", 5)
    row = game_row(
        game, bool(entry.get("misspecified", False)), trials, entry.get("attempts", 40), entry["seed"] * trials
    )
    return {k: v for k, v in row.items() if k not in ("wall_time_s", "git_commit")}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The section of the suite's report on the safety games."""
    lines = [
        "## Safe MPC from directional corrections (simulated human)",
        "",
        "| game | variant | r | trials | success (no help needed) | corrections (mean ± std) | bound K "
        "| goal first reached: trials, corrections until then | declared misspecified | MVE solve per cut |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mve = f"{r['mve_ms_mean']:.0f} ms" if r.get("mve_ms_mean") is not None else "-"
        lines.append(
            f"| {r['task']} | {'misspecified' if r['misspecified'] else 'true constraint inside'} | {r['r']} "
            f"| {r['trials']} | {r['success_rate']:.2f} | {r['corrections_mean']:.1f} ± {r['corrections_std']:.1f} "
            f"| {r['bound']} | {first_reached(r)} | {r['declared_misspecified']} / {r['trials']} | {mve} |"
        )
    return [*lines, ""]
