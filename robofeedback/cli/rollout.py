"""``robofeedback rollout``: roll a policy out and save its trajectories."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from robofeedback.cli.common import positive_int
from robofeedback.data import collect, write_video
from robofeedback.data.minari_io import check_dataset_id, is_gym_id, write_minari
from robofeedback.envs import RobotEnv, make
from robofeedback.rl.train import ALGOS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``rollout`` command's arguments."""
    p = subparsers.add_parser(
        "rollout",
        help="roll a policy out and save trajectories (and a video)",
        description="Roll a trained policy (or random actions) out, save each trajectory as .npz (or, with "
        "--minari, as one Minari dataset) and optionally an mp4 of all episodes, and print returns and success.",
    )
    p.add_argument("--env", required=True, help="env spec, as for train")
    p.add_argument(
        "--policy",
        default="random",
        help="'random', a model .zip, or a train --out folder (its checkpoints/model.zip)",
    )
    count = p.add_mutually_exclusive_group()
    count.add_argument("--episodes", type=positive_int, default=None, help="number of episodes (default 3)")
    count.add_argument("--steps", type=positive_int, default=None, help="number of steps instead of episodes")
    p.add_argument("--seed", type=int, default=0, help="seed of the first reset (default 0)")
    p.add_argument("--out", default="runs/rollouts", help="folder for traj_*.npz and rollout.mp4")
    p.add_argument("--video", action="store_true", help="render every step and write rollout.mp4")
    p.add_argument("--render-size", type=positive_int, default=224, help="frame size in pixels (default 224)")
    p.add_argument("--stochastic", action="store_true", help="sample policy actions instead of taking the mean")
    p.add_argument(
        "--minari",
        metavar="DATASET_ID",
        default=None,
        help="write the episodes as this Minari dataset (namespace/name-vN, Minari's arrow format) instead of "
        "traj_*.npz files; with the simulator's state at every step where the env can save it, so that clips can "
        "be rendered later (robofeedback minari queue); --out then holds only rollout.mp4",
    )
    p.add_argument(
        "--minari-root",
        default=None,
        help="folder of Minari datasets to write into (default $MINARI_DATASETS_PATH, else ~/.minari/datasets); "
        "minari.load_dataset finds the dataset there when MINARI_DATASETS_PATH names it",
    )
    p.set_defaults(func=run)


def _checkpoint(policy: str) -> tuple[Path, dict]:
    """The model file and training state of a ``--policy`` argument (a model .zip or a train --out folder)."""
    path = Path(policy)
    if path.is_dir():
        path = path / "checkpoints" / "model.zip"
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: give 'random', a model .zip, or a train --out folder")
    state_path = path.parent / "state.json"
    if not state_path.exists():
        raise FileNotFoundError(f"no state.json next to {path} to say which algorithm trained it")
    return path, json.loads(state_path.read_text())


def _saves_states(env: RobotEnv) -> bool:
    """Whether the env's family can save its simulator's state (panda, metaworld, bullet)."""
    return type(env).sim_state is not RobotEnv.sim_state


def run(args: argparse.Namespace) -> int:
    if args.minari_root is not None and args.minari is None:
        raise ValueError("--minari-root is where --minari writes its dataset: give --minari DATASET_ID too")
    if args.minari is not None:
        if args.minari_root is not None:
            os.environ["MINARI_DATASETS_PATH"] = str(Path(args.minari_root).resolve())
        check_dataset_id(args.minari)
    model_path, state = (None, {}) if args.policy == "random" else _checkpoint(args.policy)
    env = make(args.env, seed=args.seed, render_size=args.render_size, **state.get("env_kwargs", {}))
    model = ALGOS[state["algo"]].load(model_path, env=env, device="cpu") if model_path else None
    n_episodes = args.episodes if args.episodes is not None or args.steps is not None else 3
    trajectories = collect(
        env,
        model,
        n_episodes=n_episodes if args.steps is None else None,
        n_steps=args.steps,
        render=args.video,
        deterministic=not args.stochastic,
        seed=args.seed,
        progress=True,
        states=args.minari is not None and _saves_states(env),
    )
    out = Path(args.out)
    for i, t in enumerate(trajectories):
        if args.minari is None:
            t.save(out / f"traj_{i:03d}.npz")
        success = "" if t.success is None else f", success {bool(t.success.any())}"
        print(f"episode {i}: {len(t)} steps, env return {t.env_return:.2f}{success}")
    if args.video:
        path = write_video(np.concatenate([t.frames for t in trajectories]), out / "rollout.mp4", fps=25)
        print(f"video: {path}")
    if args.minari is None:
        print(f"trajectories: {out}/traj_*.npz")
    else:
        algorithm = "random actions" if model_path is None else f"{state['algo']} policy {model_path}"
        dataset = write_minari(trajectories, args.minari, env=env, algorithm_name=algorithm)
        print(f"Minari dataset {args.minari}: {dataset.storage.data_path.parent}")
        if not is_gym_id(env.spec_name):
            print(
                f"{env.spec_name} is robofeedback's spec, not a Gymnasium id: Minari's recover_environment() cannot "
                "make it; robofeedback.data.minari_io.recover_env(dataset) does"
            )
    env.close()
    return 0
