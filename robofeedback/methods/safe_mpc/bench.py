"""Safe MPC's bench section: alignment on the safety games with the simulated human, next to the paper's figures
with people.

An entry (``{method: safe_mpc, task: safety:<game>, trials: 20, attempts: 40, misspecified: false}``, see
``configs/bench/suites/safe_mpc.yaml``) runs ``trials`` seeded trials of up to ``attempts`` attempts on the game,
or on its misspecified variant (the true constraint outside the hypothesis box). Its row holds the success rate
(an attempt that reached the goal with no correction and no violation), corrections per trial (mean, spread, max)
next to the certified bound K, the corrections used until the goal was first reached (with help), violations, the
maximum-volume-ellipsoid solve time per correction, and how many trials declared misspecification and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robofeedback.config import require_positive_ints
from robofeedback.envs import make
from robofeedback.methods.bench import Entry, EntryError
from robofeedback.methods.safe_mpc.alignment import align, summarize
from robofeedback.methods.safe_mpc.games import GAMES

# Xie et al. (arXiv 2407.04216), with people: corrections per trial and success (their code's analysis notebooks).
PAPER = {
    "pendulum": "about 12 corrections to converge (simulated user, 50 runs: 12.8 ± 2.1)",
    "drone": "15.7 ± 10.6 corrections, success 0.89 ± 0.08 (15 users x 10 trials)",
    "arm": "16.5 ± 6.2 corrections, success 0.89 ± 0.11 (15 users x 10 trials)",
}

# The learner's rules that declare misspecification, by words of the reason it gives (cutting_plane.py).
RULES = {
    "the ellipsoid problem has no solution": "no parameters left",
    "the robot was seen in an unsafe state": "a violation no parameters explain",
    "the remaining ellipsoid's volume": "volume below V_min",
    "corrections exceed the certified bound": "more than K corrections",
}


@dataclass(frozen=True, kw_only=True)
class SafeMPCEntry(Entry):
    """A safe-MPC bench entry's settings: ``trials`` trials of up to ``attempts`` attempts each, on the game's
    ``misspecified`` variant when asked."""

    trials: int = 5
    attempts: int = 40
    misspecified: bool = False
    guess: str = "mve"  # "random": the ablation of the learner's guess (a random point instead of the centre)

    def __post_init__(self) -> None:
        require_positive_ints(trials=self.trials, attempts=self.attempts)
        if not isinstance(self.misspecified, bool):
            raise EntryError(f"misspecified must be true or false, got {self.misspecified!r}")
        if self.guess not in ("mve", "random"):
            raise EntryError(f"safe_mpc entry: guess must be 'mve' or 'random', got {self.guess!r}")


def game_of(task: str) -> str:
    """The game of a ``safety:<game>`` task."""
    family, _, game = task.partition(":")
    if family != "safety" or game not in GAMES:
        raise EntryError(
            f"safe_mpc entries run on a safety game, one of safety:{', safety:'.join(GAMES)}; got {task!r}"
        )
    return game


def game_row(game: str, settings: SafeMPCEntry, first_seed: int) -> dict[str, Any]:
    """The trials of one game (seeded ``first_seed``, ``first_seed + 1``, ...), summarised."""
    env = make(f"safety:{game}", seed=0, render_size=96, misspecified=settings.misspecified)
    seeds = range(first_seed, first_seed + settings.trials)
    trials = [align(env, seed=seed, episodes=settings.attempts, guess=settings.guess) for seed in seeds]
    row = {
        "game": game,
        "misspecified": settings.misspecified,
        "guess": settings.guess,
        "r": env.game.model.features.r,
        "epsilon": env.game.model.epsilon,
        "episodes": settings.attempts,
        **summarize(trials),
        "attempts_mean": sum(t.attempts for t in trials) / len(trials),
        "theta_error_mean": sum(t.theta_error for t in trials) / len(trials),
        "reasons": [t.reason.split(":")[0] for t in trials if t.misspecified],
    }
    env.close()
    return row


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """One entry's trials on its game; seed s runs the trial seeds s * trials ... (s + 1) * trials - 1."""
    settings = SafeMPCEntry.from_dict(entry)
    return game_row(game_of(settings.task), settings, settings.seed * settings.trials)


def first_reached(row: dict[str, Any]) -> str:
    """'share of trials, corrections until then (mean ± std)' for the trials whose robot reached the goal at all."""
    if row.get("first_success_corrections_mean") is None:
        return "0.00" if "first_success_rate" in row else "-"  # "-": a row from before this was measured
    spread = f"{row['first_success_corrections_mean']:.1f} ± {row['first_success_corrections_std']:.1f}"
    return f"{row['first_success_rate']:.2f}, {spread}"


def rule(reason: str) -> str:
    """The rule that declared misspecification, named from the learner's reason (the reason itself if none is
    known)."""
    return next((name for words, name in RULES.items() if words in reason), reason)


def declared(row: dict[str, Any]) -> str:
    """How many trials declared misspecification, and how many of them each rule declared."""
    rules = Counter(rule(reason) for reason in row["reasons"])
    named = ", ".join(f"{name}: {n}" for name, n in sorted(rules.items()))
    return f"{row['declared_misspecified']} / {row['trials']}" + (f" ({named})" if rules else "")


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The section of the suite's report on the safety games, next to the paper's figures with people."""
    lines = [
        "## Safe MPC from directional corrections (simulated human)",
        "",
        "Per game: trials (seeds) of up to `attempts` attempts, learning carried across attempts (corrections and "
        "violations both cut). A trial succeeds when an attempt reaches the goal with no correction and without "
        "entering the unsafe region: the robot needed no more help. 'Goal first reached' counts the corrections "
        "until an attempt first got there, with help. The simulated human corrects with probability 0.3 when the "
        "plan comes within 2 of the true boundary. K is the certificate ln(Vol Theta_0 / V_min) / -ln(1 - 1/r), "
        "V_min the ball of radius epsilon. The random-guess ablation moves the guess to a random point of what "
        "remains instead of the ellipsoid's centre: the certificate does not cover it.",
        "",
        "| game | variant | r | trials | success (no help needed) | corrections (mean ± std, max) | bound K "
        "| goal first reached: trials, corrections until then | violations | declared misspecified (rule) "
        "| MVE solve per cut (mean / max) | paper, with people |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mve = f"{r['mve_ms_mean']:.0f} / {r['mve_ms_max']:.0f} ms" if r["mve_ms_mean"] is not None else "-"
        paper = "" if r["misspecified"] else PAPER[r["game"]]
        variant = "misspecified" if r["misspecified"] else "true constraint inside"
        variant += ", random guess (ablation)" if r.get("guess") == "random" else ""
        lines.append(
            f"| {r['task']} | {variant} | {r['r']} "
            f"| {r['trials']} | {r['success_rate']:.2f} | {r['corrections_mean']:.1f} ± {r['corrections_std']:.1f}, "
            f"{r['corrections_max']} | {r['bound']} | {first_reached(r)} | {r['violations']} | {declared(r)} "
            f"| {mve} | {paper} |"
        )
    return [*lines, ""]
