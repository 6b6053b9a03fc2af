"""``robofeedback train``: a stable-baselines3 policy trained on the env's reward or a learned one.

Each reward method's flags and the objects built from them sit together, one small set of functions per method:
preference learning (PEBBLE; its options apply to VARP and HERON too), HERON, VARP and the CLIP reward (VLM-RM).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robofeedback.cli.common import positive_int

if TYPE_CHECKING:
    from robofeedback.feedback.sources import FeedbackSource
    from robofeedback.rewards.clip import ClipReward
    from robofeedback.rewards.heron import HierarchicalJudge


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``train`` command's arguments."""
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
        choices=["env", "preference", "clip", "varp", "heron"],
        help="reward to train on: 'env' (the env's own; default), 'preference' (learned from --teacher's labels), "
        "'clip' (VLM-RM: CLIP similarity of each frame to --goal), 'varp' (learned from a --judge's labels on "
        "trajectory sketches, regularized by the agent's own data) or 'heron' (learned from comparisons by a "
        "ranking of the env's reward --factors)",
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
    add_preference_arguments(p)
    add_heron_arguments(p)
    add_varp_arguments(p)
    add_clip_arguments(p)
    p.set_defaults(func=run)


def add_preference_arguments(parser: argparse.ArgumentParser) -> None:
    """Preference learning (PEBBLE): who labels, the feedback loop, the reward model."""
    g = parser.add_argument_group("preference learning (--reward preference)")
    g.add_argument(
        "--teacher",
        default="oracle",
        choices=["oracle", "stochastic", "mistake", "skip", "equal", "myopic", "human"],
        help="who labels: a B-Pref scripted teacher, or 'human' (people in the annotation app, through --store)",
    )
    g.add_argument(
        "--teacher-arg",
        type=float,
        default=None,
        help="the teacher's parameter: beta (stochastic, default 1), eps (mistake, default 0.1), "
        "threshold (skip, equal), gamma (myopic, default 0.9)",
    )
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
        "--wait",
        type=float,
        default=0.0,
        help="with --teacher human: seconds to wait for a round's answers before training on (default 0)",
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


TEACHER_ARG = {"stochastic": "beta", "mistake": "eps", "skip": "threshold", "equal": "threshold", "myopic": "gamma"}


def preference_feedback(args: argparse.Namespace) -> FeedbackSource:
    """Who labels for --reward preference: the scripted --teacher, or people through the store."""
    from robofeedback.feedback.sources import HumanQueue
    from robofeedback.feedback.teachers import make_teacher

    if args.teacher == "human":
        return HumanQueue(wait_seconds=args.wait)
    params = {}
    if args.teacher_arg is not None:
        if args.teacher not in TEACHER_ARG:
            raise ValueError(f"the {args.teacher} teacher takes no --teacher-arg")
        params[TEACHER_ARG[args.teacher]] = args.teacher_arg
    elif args.teacher in ("skip", "equal"):
        raise ValueError(f"the {args.teacher} teacher needs --teacher-arg THRESHOLD (in segment-return units)")
    return make_teacher(args.teacher, seed=args.seed, **params)


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


def add_heron_arguments(parser: argparse.ArgumentParser) -> None:
    """HERON: the ranking of the env's reward factors and how pairs are compared by it."""
    g = parser.add_argument_group("HERON (--reward heron; the preference-learning options above apply too)")
    g.add_argument("--factors", default=None, help="the env's reward factors, most important first (comma-separated)")
    g.add_argument("--sigma", default=None, help="margin scale per level, comma-separated, or one number (default 1)")
    g.add_argument(
        "--signs", default=None, help="+1 (reward) or -1 (cost) per factor, comma-separated (default: the env's)"
    )
    g.add_argument(
        "--ranking-from",
        default=None,
        metavar="STORE",
        help="take the order, signs and margins from the latest factor ranking of --env in this feedback store "
        "(what the annotation app writes) instead of --factors",
    )
    g.add_argument(
        "--wait-ranking",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --ranking-from: if the store has no ranking of --env, ask for one in the app's factor-ranking "
        "tab and wait this long (default 0: fail at once)",
    )
    g.add_argument(
        "--granularity",
        default="transition",
        choices=["transition", "segment"],
        help="compare single transitions (default, as the authors' code does) or segments by per-factor sums",
    )
    g.add_argument("--ties", default="drop", choices=["drop", "equal"], help="a tie at every level: no label or equal")
    g.add_argument("--level-scale", type=float, default=None, help="alpha >= 1: pairs decided lower count as closer")


def _numbers(text: str | None, name: str, cast=float) -> list | None:
    if text is None:
        return None
    try:
        return [cast(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name} takes comma-separated numbers, got {text!r}") from None


def heron_feedback(args: argparse.Namespace) -> HierarchicalJudge:
    """The HERON judge: --factors, or the ranking people gave in the app (--ranking-from)."""
    from robofeedback.rewards.heron import HierarchicalJudge

    options = {"granularity": args.granularity, "ties": args.ties}
    sigma, signs = _numbers(args.sigma, "sigma"), _numbers(args.signs, "signs", int)
    if sigma is not None:
        options["sigma"] = sigma[0] if len(sigma) == 1 else sigma
    if args.ranking_from:
        if args.factors:
            raise ValueError("give --factors or --ranking-from, not both")
        factors = None
        if args.wait_ranking > 0:  # the app shows people the env's named factors to rank
            from robofeedback.envs import make

            env = make(args.env)
            factors = list(env.factor_info)
            env.close()
        return HierarchicalJudge.from_store(
            args.ranking_from, args.env, signs=signs, factors=factors, wait_seconds=args.wait_ranking, **options
        )
    if not args.factors:
        raise ValueError("--reward heron needs --factors (most important first) or --ranking-from STORE")
    return HierarchicalJudge([f.strip() for f in args.factors.split(",")], signs=signs, **options)


def heron_overrides(args: argparse.Namespace) -> dict:
    """HERON's reward-model settings given as flags."""
    return {} if args.level_scale is None else {"level_scale": args.level_scale}


def add_varp_arguments(parser: argparse.ArgumentParser) -> None:
    """VARP: the judge of trajectory sketches and the agent regularization."""
    g = parser.add_argument_group("VARP (--reward varp; the preference-learning options above apply too)")
    g.add_argument(
        "--judge",
        default="clip",
        choices=["clip", "chat", "teacher"],
        help="who labels: 'clip' (offline CLIP judge with --goal, --baseline, --alpha, --clip-model), 'chat' (a vision "
        "chat model at --vlm-url) or 'teacher' (the scripted --teacher, for comparison)",
    )
    g.add_argument(
        "--sketch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw the agent's path on the frames the judge sees (default on)",
    )
    g.add_argument("--agent-reg", type=float, default=None, help="lambda of the agent regularization (default 0.1)")
    g.add_argument("--judge-margin", type=float, default=0.0, help="CLIP judge: similarity gap below which it abstains")
    g.add_argument(
        "--task", default=None, help="the task in words, for the chat judge and people in the app (default: known text)"
    )
    g.add_argument("--vlm-url", default=None, help="chat judge: base URL of an OpenAI-compatible server (…/v1)")
    g.add_argument("--vlm-model", default=None, help="chat judge: model name on that server")
    g.add_argument("--vlm-key-env", default="OPENAI_API_KEY", help="chat judge: env variable with the API key")
    g.add_argument("--prompts", default=None, help="chat judge: folder with your own prompt files")


def varp_feedback(args: argparse.Namespace) -> FeedbackSource:
    """VARP's judge: CLIP, a vision chat model, or the scripted --teacher."""
    from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge, task_prompts

    if args.judge == "teacher":
        return preference_feedback(args)
    known = task_prompts(args.env)
    if args.judge == "chat":
        task = args.task or known.get("task")
        if not task:
            raise ValueError(f"--judge chat needs --task: no task text is known for {args.env}")
        return ChatVLMJudge(
            task,
            base_url=args.vlm_url,
            model=args.vlm_model,
            api_key_env=args.vlm_key_env,
            prompts=args.prompts,
            sketch=args.sketch,
        )
    goal = args.goal or known.get("goal")
    if not goal:
        raise ValueError(f'--judge clip needs --goal "<what the frame shows when the task is done>" for {args.env}')
    baseline = args.baseline or (known.get("baseline") if not args.goal else None)
    return ClipJudge(
        goal,
        baseline=baseline,
        alpha=args.alpha if baseline else 0.0,
        model=args.clip_model,
        pretrained=args.pretrained,
        margin=args.judge_margin,
        sketch=args.sketch,
    )


def varp_overrides(args: argparse.Namespace) -> dict:
    """VARP's reward-model settings given as flags."""
    return {} if args.agent_reg is None else {"agent_reg": args.agent_reg}


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLIP reward (VLM-RM): prompts, model and how often frames are scored."""
    g = parser.add_argument_group("CLIP reward (--reward clip)")
    g.add_argument("--goal", action="append", help="language goal; repeat to average several prompts")
    g.add_argument("--baseline", action="append", help="baseline prompt for the goal-baseline projection")
    g.add_argument("--alpha", type=float, default=0.0, help="projection strength in [0, 1] (default 0: cosine)")
    g.add_argument("--clip-model", default="mini", help="'mini' (shipped; default), an open_clip folder or name")
    g.add_argument("--pretrained", default=None, help="open_clip tag or checkpoint file for a named --clip-model")
    g.add_argument("--clip-every", type=positive_int, default=1, help="score every k-th step, holding the last")
    g.add_argument("--clip-at-episode-end", action="store_true", help="score only each episode's last step")
    g.add_argument("--clip-scale", type=float, default=1.0, help="multiply the CLIP reward by this (default 1)")
    g.add_argument("--clip-normalize", action="store_true", help="standardise the reward with running statistics")
    g.add_argument("--clip-precision", default="fp32", choices=["fp32", "bf16"], help="image encoder precision")


def clip_reward(args: argparse.Namespace) -> ClipReward:
    """The CLIP reward that the --goal, --baseline and --clip-* flags describe."""
    from robofeedback.rewards.clip import ClipReward

    if not args.goal:
        raise ValueError('--reward clip needs --goal "<what the frame shows when the task is done>"')
    return ClipReward(
        goal=args.goal,
        baseline=args.baseline,
        alpha=args.alpha,
        model=args.clip_model,
        pretrained=args.pretrained,
        precision=args.clip_precision,
        scale=args.clip_scale,
        normalize=args.clip_normalize,
        every=args.clip_every,
        at_episode_end=args.clip_at_episode_end,
    )


FEEDBACK = {"preference": preference_feedback, "varp": varp_feedback, "heron": heron_feedback}


def _reward_and_feedback(
    args: argparse.Namespace, config: dict
) -> tuple[str | ClipReward, FeedbackSource | None, dict]:
    """The reward to train on, who labels (None for a fixed reward), and ``config`` with the method's flags in."""
    from robofeedback.config import deep_merge

    if args.reward == "clip":
        return clip_reward(args), None, config
    if args.reward not in FEEDBACK:
        return args.reward, None, config
    feedback = FEEDBACK[args.reward](args)
    model = preference_overrides(args)
    if args.reward == "heron":
        model.update(heron_overrides(args))
    elif args.reward == "varp":
        model.update(varp_overrides(args))
    config = deep_merge(deep_merge(config, feedback_overrides(args)), {"preference": model})
    return args.reward, feedback, config


def run(args: argparse.Namespace) -> int:
    from robofeedback.config import load_yaml
    from robofeedback.rl.train import train

    out = args.out or f"runs/{args.env.replace(':', '-')}-{args.algo}-s{args.seed}"
    reward, feedback, config = _reward_and_feedback(args, load_yaml(args.config) if args.config else {})
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
