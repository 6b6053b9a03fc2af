"""Safe MPC alignment on the three safety games, with the simulated human, next to the paper's figures with people.

``python -m robofeedback.bench.safety [--seeds 20] [--games pendulum drone arm] [--episodes 40]`` runs, for every
game, ``--seeds`` trials of the well-specified game and as many of the misspecified variant (the true constraint
outside the hypothesis box), and writes ``results.json`` and ``REPORT.md``: success rate (an attempt that reached the
goal with no correction and no violation), corrections per trial (mean, spread, max) next to the certified bound
K, the corrections used until the goal was first reached (with help), violations, the maximum-volume-ellipsoid
solve time per correction, and how often the misspecified variant was declared.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from robofeedback.config import run_metadata

# Xie et al. (arXiv 2407.04216), with people: corrections per trial and success (their code's analysis notebooks).
PAPER = {
    "pendulum": "about 12 corrections to converge (simulated user, 50 runs: 12.8 ± 2.1)",
    "drone": "15.7 ± 10.6 corrections, success 0.89 ± 0.08 (15 users x 10 trials)",
    "arm": "16.5 ± 6.2 corrections, success 0.89 ± 0.11 (15 users x 10 trials)",
}


def game_row(game: str, misspecified: bool, seeds: int, episodes: int, first_seed: int = 0) -> dict[str, Any]:
    """``seeds`` trials (seeded ``first_seed``, ``first_seed + 1``, ...) of one game (the misspecified variant when
    asked), summarised."""
    from robofeedback.envs import make
    from robofeedback.safety.alignment import align, summarize

    env = make(f"safety:{game}", seed=0, render_size=96, misspecified=misspecified)
    start = time.time()
    trials = [align(env, seed=seed, episodes=episodes) for seed in range(first_seed, first_seed + seeds)]
    row = {
        "game": game,
        "misspecified": misspecified,
        "r": env.game.model.features.r,
        "epsilon": env.game.model.epsilon,
        "episodes": episodes,
        **summarize(trials),
        "attempts_mean": sum(t.attempts for t in trials) / len(trials),
        "theta_error_mean": sum(t.theta_error for t in trials) / len(trials),
        "reasons": sorted({t.reason.split(":")[0] for t in trials if t.misspecified}),
        "wall_time_s": round(time.time() - start, 1),
        "git_commit": run_metadata()["git_commit"],
    }
    env.close()
    return row


def run(games: list[str], seeds: int, episodes: int) -> list[dict[str, Any]]:
    rows = []
    for game in games:
        for misspecified in (False, True):
            rows.append(game_row(game, misspecified, seeds, episodes))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def first_reached(row: dict[str, Any]) -> str:
    """'share of trials, corrections until then (mean ± std)' for the trials whose robot reached the goal at all."""
    if row.get("first_success_corrections_mean") is None:
        return "0.00" if "first_success_rate" in row else "-"  # "-": a row from before this was measured
    spread = f"{row['first_success_corrections_mean']:.1f} ± {row['first_success_corrections_std']:.1f}"
    return f"{row['first_success_rate']:.2f}, {spread}"


def report(rows: list[dict[str, Any]], out: Path) -> Path:
    lines = [
        "# Safe MPC alignment with the simulated human",
        "",
        "Per game: trials (seeds) of up to `episodes` attempts, learning carried across attempts (corrections and "
        "violations both cut). A trial succeeds when an attempt reaches the goal with no correction and without "
        "entering the unsafe region: the robot needed no more help. 'Goal first reached' counts the corrections "
        "until an attempt first got there, with help. The simulated human corrects with probability 0.3 when the "
        "plan comes within 2 of the true boundary. K is the certificate ln(Vol Theta_0 / V_min) / -ln(1 - 1/r), "
        "V_min the ball of radius epsilon.",
        "",
        "| game | r | variant | trials | success | corrections (mean ± std, max) | bound K | goal first reached: "
        "trials, corrections until then | violations | declared misspecified | MVE solve per cut (mean / max) "
        "| paper, with people |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mve = f"{r['mve_ms_mean']:.0f} / {r['mve_ms_max']:.0f} ms" if r["mve_ms_mean"] is not None else "-"
        paper = "" if r["misspecified"] else PAPER[r["game"]]
        lines.append(
            f"| {r['game']} | {r['r']} | {'misspecified' if r['misspecified'] else 'true constraint inside'} "
            f"| {r['trials']} | {r['success_rate']:.2f} | {r['corrections_mean']:.1f} ± {r['corrections_std']:.1f}, "
            f"{r['corrections_max']} | {r['bound']} | {first_reached(r)} | {r['violations']} "
            f"| {r['declared_misspecified']} / {r['trials']} | {mve} | {paper} |"
        )
    lines += ["", f"Code: `{json.dumps(run_metadata())}`", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/safety")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=40, help="attempts per trial")
    parser.add_argument("--games", nargs="*", default=["pendulum", "drone", "arm"])
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run(args.games, args.seeds, args.episodes)
    (out / "results.json").write_text(json.dumps({"rows": rows, "metadata": run_metadata()}, indent=2))
    print(f"report: {report(rows, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
