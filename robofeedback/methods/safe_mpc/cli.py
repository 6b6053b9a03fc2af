"""``robofeedback safe-mpc``: safe MPC alignment from a person's corrections."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from robofeedback.data.store import FeedbackStore
from robofeedback.data.video import write_video
from robofeedback.envs import make
from robofeedback.methods.arguments import positive_int
from robofeedback.methods.safe_mpc.alignment import SimulatedHuman, StoreHuman, TerminalHuman, align


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``safe-mpc`` command's arguments."""
    p = subparsers.add_parser(
        "safe-mpc",
        help="safe MPC alignment: a person nudges the robot away from danger, each nudge cuts the constraint space",
        description="Play a safety game: the robot plans with model predictive control under its current guess of "
        "a hidden safety constraint, and whoever corrects it (--simulated-human, or --human terminal / app) sends "
        "directions; each correction cuts the hypothesis space, with a certified bound on how many can be needed "
        "or a declaration that the space cannot hold the true constraint. Writes --out/trial.json, the "
        "corrections to the feedback store, and with --video a video of the run.",
    )
    p.add_argument("--game", required=True, help="pendulum, drone or arm (the safety:<game> envs)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--simulated-human", action="store_true", help="the paper's simulated corrector (default)")
    who.add_argument("--human", choices=["terminal", "app"], help="a person at this terminal, or in the app")
    p.add_argument(
        "--episodes", type=positive_int, default=40, help="attempts at the task, until one needs no help (default 40)"
    )
    p.add_argument("--misspecified", action="store_true", help="the variant whose true constraint is outside")
    p.add_argument("--noise", type=float, default=0.0, help="simulated human: direction noise (default 0)")
    p.add_argument("--epsilon", type=float, default=None, help="radius of the aligned set (V_min; default the game's)")
    p.add_argument("--store", default=None, help="feedback store for the corrections (default --out/feedback.db)")
    p.add_argument("--wait", type=float, default=5.0, help="--human app: seconds to wait for each step's answer")
    p.add_argument("--video", action="store_true", help="write --out/trial.mp4 with the plan drawn")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/safe-mpc-<game>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    env = make(f"safety:{args.game}", seed=args.seed, render_size=224, misspecified=args.misspecified)
    out = Path(args.out or f"runs/safe-mpc-{args.game}")  # made once the game is known to exist
    out.mkdir(parents=True, exist_ok=True)
    store = FeedbackStore(args.store or out / "feedback.db")
    run_name = f"safe-mpc-{args.game}-s{args.seed}"
    if args.human == "terminal":
        human = TerminalHuman(frame_path=str(out / "frame.png"))
    elif args.human == "app":
        human = StoreHuman(store, run=run_name, wait_seconds=args.wait, frame_dir=out / "frames")
    else:
        human = SimulatedHuman(env.game.theta_true, noise=args.noise, seed=args.seed)
    trial = align(
        env,
        human,
        episodes=args.episodes,
        seed=args.seed,
        store=store,
        run=run_name,
        record=args.video,
        epsilon=args.epsilon,
        progress=True,
    )
    if args.video and trial.frames:
        print(f"video: {write_video(np.stack(trial.frames), out / 'trial.mp4', fps=10)}")
    record = {f.name: getattr(trial, f.name) for f in fields(trial) if f.name != "frames"}
    (out / "trial.json").write_text(
        json.dumps({"game": args.game, "misspecified": args.misspecified, **record}, indent=2)
    )
    outcome = (
        "success (an attempt with no help)"
        if trial.success
        else ("declared misspecified" if trial.misspecified else "no attempt without help")
    )
    first = (
        f"the goal was first reached on attempt {trial.first_success}, after {trial.first_success_corrections} "
        "corrections"
        if trial.first_success
        else "the goal was never reached"
    )
    print(
        f"{args.game}: {outcome} after {trial.attempts} attempts; {trial.corrections} corrections "
        f"(certified bound K = {trial.bound}), {trial.violations} violations; {first}"
    )
    if trial.misspecified:
        print(f"why: {trial.reason}")
    print(f"corrections in {store} (run {run_name}); trial in {out / 'trial.json'}")
    return 0
