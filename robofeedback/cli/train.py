"""``robofeedback train``: a stable-baselines3 policy trained on the env's reward, or on a method's reward.

The ``--reward`` choices and each method's flags come from :mod:`robofeedback.registry`. The flags shared by
methods are here: who labels, the CLIP prompts and model, and the feedback loop and reward model of learned rewards
(the preference core's, which PEBBLE, VARP and HERON share).
"""

from __future__ import annotations

import argparse

from robofeedback import registry
from robofeedback.config import deep_merge, load_yaml
from robofeedback.methods.arguments import add_clip_arguments, add_teacher_arguments, positive_int, teacher_from_args
from robofeedback.protocols import FeedbackSource, RewardFunction
from robofeedback.rewards.offline import load_pretrained
from robofeedback.rl.train import train


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``train`` command's arguments: the general ones, the shared groups, then each method's own."""
    methods = {name: registry.get(name) for name in registry.names("train")}
    p = subparsers.add_parser(
        "train",
        help="train a stable-baselines3 policy on a reward",
        description="Train a policy, evaluating it on the env's own reward and success as it goes. Writes "
        "TensorBoard logs, checkpoints (a rerun with the same --out resumes), eval.jsonl, eval.mp4, "
        "learning_curve.png and summary.json to --out.",
    )
    p.add_argument("--env", required=True, help="env spec: panda:<id>, metaworld:<task>, bullet:<id> or a Gymnasium id")
    p.add_argument(
        "--reward",
        default="env",
        choices=["env", *methods],
        help="reward to train on: 'env' (the env's own; default), or "
        + "; ".join(f"{m.summary}" for m in methods.values()),
    )
    p.add_argument(
        "--reward-model",
        metavar="FOLDER",
        help="train on a saved reward model as it is (a save_pretrained folder: a run's reward_model/, or what "
        "`robofeedback reward fit` wrote); leaves --reward at env",
    )
    p.add_argument("--algo", default="sac", choices=["sac", "td3", "ppo"], help="SB3 algorithm (default sac)")
    p.add_argument("--steps", type=positive_int, default=20_000, help="total env steps (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/<env>-<algo>-s<seed>)")
    p.add_argument("--n-envs", type=positive_int, default=None, help="parallel envs (default from the config)")
    p.add_argument(
        "--config",
        default=None,
        help="YAML file overriding configs/train/<family>.yaml: general keys, env_kwargs, "
        "or SB3 settings under sac:/td3:/ppo:",
    )
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--task", default=None, help="the task in words, for a chat judge and people in the app (default: known text)"
    )
    p.add_argument(
        "--wandb",
        default=None,
        metavar="PROJECT",
        help="also log to this Weights & Biases project (the same scalars as TensorBoard, the config and the commit; "
        "WANDB_ENTITY sets the team; needs robofeedback[share])",
    )
    p.add_argument(
        "--wandb-mode",
        choices=["online", "offline"],
        default=None,
        help="with --wandb: 'offline' needs no network and writes the run under --out/wandb (or $WANDB_DIR) for "
        "`wandb sync` later (default: $WANDB_MODE, else online)",
    )
    add_teacher_arguments(p)
    _add_learned_reward_arguments(p)
    add_clip_arguments(p)
    for method in methods.values():
        if method.add_arguments is not None:
            method.add_arguments(p)
    p.set_defaults(func=run)


def _add_learned_reward_arguments(parser: argparse.ArgumentParser) -> None:
    """The feedback loop and the reward model of a learned reward (PEBBLE's, which VARP and HERON share)."""
    g = parser.add_argument_group("learned rewards: the feedback loop and the reward model")
    g.add_argument("--budget", type=int, default=None, help="total labels to ask for (default 1000)")
    g.add_argument("--labels-per-round", type=positive_int, default=None, help="labels per round (default 50)")
    g.add_argument("--feedback-every", type=positive_int, default=None, help="env steps between rounds (default 5000)")
    g.add_argument(
        "--segment-length", type=positive_int, default=None, help="steps per segment (default 50; 25 for panda)"
    )
    g.add_argument(
        "--selection",
        choices=["uniform", "disagreement", "entropy"],
        default=None,
        help="which pairs to ask about (default disagreement)",
    )
    g.add_argument("--pretrain-steps", type=int, default=None, help="PEBBLE's unsupervised exploration steps first")
    g.add_argument(
        "--store", default=None, help="feedback store: a SQLite path or a database URL (default --out/feedback.db)"
    )
    g.add_argument(
        "--same-episode",
        type=float,
        default=None,
        help="share of pairs cut from two places of one episode (same goal and start; default 0: any two)",
    )
    _add_reward_model_arguments(g)


def _add_reward_model_arguments(g: argparse._ArgumentGroup) -> None:
    """The reward model's options: its inputs, training (SURF), exploration bonus (RUNE) and output."""
    g.add_argument("--input-norm", action="store_true", help="standardise the reward model's inputs per feature")
    g.add_argument(
        "--goal-features",
        action="store_true",
        help="goal-conditioned envs: the reward model also sees achieved minus desired goal",
    )
    g.add_argument(
        "--goal-only",
        action="store_true",
        help="with --goal-features: the reward model sees the two goals and their difference only",
    )
    g.add_argument(
        "--goal-distance",
        action="store_true",
        help="with --goal-features: the distance between achieved and desired goal is one more input",
    )
    g.add_argument(
        "--max-updates",
        type=positive_int,
        default=None,
        help="minibatch steps per retraining at most, whatever the labels so far (bounded, warm-started)",
    )
    g.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help="train on targets moved this far towards 'equal' (y (1 - eps) + eps / 2; default 0)",
    )
    g.add_argument(
        "--pseudo-labels",
        type=float,
        default=None,
        metavar="TAU",
        help="SURF: also learn from unlabelled pairs the model is surer of than TAU (e.g. 0.99)",
    )
    g.add_argument("--pseudo-ratio", type=positive_int, default=None, help="SURF: unlabelled per labelled pair (4)")
    g.add_argument("--pseudo-weight", type=float, default=None, help="SURF: weight of the pseudo-label loss (1)")
    g.add_argument(
        "--crop", type=int, default=None, help="SURF's temporal cropping: cut pairs by up to this many steps (0: off)"
    )
    g.add_argument(
        "--explore-bonus",
        type=float,
        default=None,
        metavar="BETA0",
        help="RUNE: add BETA0 (1 - rho)^t x the ensemble's disagreement to the reward (e.g. 0.05)",
    )
    g.add_argument("--explore-decay", type=float, default=None, metavar="RHO", help="RUNE: the decay rho (0.001)")
    g.add_argument("--normalize-reward", action="store_true", help="standardise the learned reward after each update")
    g.add_argument(
        "--reward-offset",
        type=float,
        default=None,
        help="a constant added to the learned reward (e.g. 1 with --normalize-reward where falls end episodes)",
    )


def feedback_overrides(args: argparse.Namespace) -> dict:
    """The feedback loop's settings given as flags."""
    names = {
        "budget": "budget",
        "labels_per_round": "labels_per_round",
        "feedback_every": "every",
        "segment_length": "segment_length",
        "selection": "selection",
        "pretrain_steps": "pretrain_steps",
        "same_episode": "same_episode",
    }
    settings = {key: getattr(args, arg) for arg, key in names.items() if getattr(args, arg) is not None}
    return {"feedback": settings} if settings else {}


def preference_overrides(args: argparse.Namespace) -> dict:
    """The reward model's settings given as flags (feedback-efficiency options, normalisation, offset)."""
    names = {
        "max_updates": "max_updates",
        "label_smoothing": "label_smoothing",
        "pseudo_labels": "pseudo_threshold",
        "pseudo_ratio": "pseudo_ratio",
        "pseudo_weight": "pseudo_weight",
        "crop": "crop",
        "explore_bonus": "explore_bonus",
        "explore_decay": "explore_decay",
        "reward_offset": "offset",
    }
    model = {key: getattr(args, arg) for arg, key in names.items() if getattr(args, arg) is not None}
    switches = ("input_norm", "goal_features", "goal_only", "goal_distance")
    model.update({key: True for key in switches if getattr(args, key)})
    if args.normalize_reward:
        model["normalize"] = True
    return model


def reward_and_feedback(
    args: argparse.Namespace, config: dict
) -> tuple[str | RewardFunction, FeedbackSource | None, dict]:
    """The reward to train on, who labels (None for a fixed reward), and ``config`` with the flags in: the method's
    own, and for a learned reward the feedback loop's and reward model's."""
    if args.reward_model is not None:
        if args.reward != "env":
            raise ValueError(
                f"--reward-model trains on a saved model; it cannot be combined with --reward {args.reward}"
            )
        return load_pretrained(args.reward_model), None, config
    if args.reward == "env":
        return "env", None, config
    method = registry.get(args.reward)
    if method.from_args is not None:
        reward, feedback, overrides = method.from_args(args)
    else:  # a method with no flags of its own: a learned one learns from the teacher the shared flags name
        reward, feedback, overrides = args.reward, teacher_from_args(args) if method.feedback else None, {}
    config = deep_merge(config, overrides)
    if method.feedback is not None:
        config = deep_merge(config, feedback_overrides(args))
        config = deep_merge(config, {"preference": preference_overrides(args)})
    return reward, feedback, config


def wandb_options(args: argparse.Namespace) -> dict | None:
    """The W&B run ``--wandb`` and ``--wandb-mode`` ask for (None: TensorBoard only)."""
    if args.wandb is None:
        if args.wandb_mode is not None:
            raise ValueError("--wandb-mode needs --wandb PROJECT")
        return None
    return {"project": args.wandb, **({"mode": args.wandb_mode} if args.wandb_mode else {})}


def run(args: argparse.Namespace) -> int:
    """Train as the flags say and print where the results went."""
    out = args.out or f"runs/{args.env.replace(':', '-')}-{args.algo}-s{args.seed}"
    reward, feedback, config = reward_and_feedback(args, load_yaml(args.config) if args.config else {})
    result = train(
        args.env,
        reward=reward,
        algo=args.algo,
        total_steps=args.steps,
        n_envs=args.n_envs,
        seed=args.seed,
        out_dir=out,
        config=config,
        resume=not args.no_resume,
        progress=not args.no_progress,
        feedback=feedback,
        store=args.store,
        task=args.task,
        wandb=wandb_options(args),
    )
    final = result.final_eval
    print(f"trained {args.algo.upper()} on {args.env} for {result.steps} steps in {result.wall_time_s:.0f} s")
    line = f"final evaluation ({result.config.eval_episodes} episodes): mean env return {final['mean_env_return']:.2f}"
    if "success_rate" in final:
        line += f", success rate {final['success_rate']:.2f}"
    print(line)
    if result.feedback:
        fb = result.feedback
        accuracy = fb.get("heldout_accuracy", float("nan"))
        print(
            f"feedback: {fb['labels']} labels from {fb['source']} in {fb['rounds']} rounds; reward model accuracy "
            f"on the last round's labels before it learned them: {accuracy:.2f} (pairs picked by '{fb['selection']}')"
        )
        if fb.get("levels"):
            print("decided at: " + ", ".join(f"{name} {share:.0%}" for name, share in fb["levels"].items()))
    print(f"video:          {result.video}")
    print(f"learning curve: {result.learning_curve}")
    print(f"checkpoint:     {result.checkpoint / 'model.zip'}")
    print(f"tensorboard:    tensorboard --logdir {result.out_dir / 'tb'}")
    return 0
