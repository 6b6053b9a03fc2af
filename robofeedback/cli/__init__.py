"""The ``robofeedback`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robofeedback.cli.common import (
    add_app_arguments,
    add_llm_arguments,
    add_store_argument,
    app_server,
    chat_client,
    info_keys,
    positive_int,
)
from robofeedback.parallel import add_executor_arguments

EXAMPLES = """examples:
  robofeedback envs
  robofeedback train --env panda:PandaReach-v3 --reward env --algo sac --steps 8000 --seed 0 --out runs/reach
  robofeedback train --env metaworld:button-press-topdown --reward preference --teacher oracle --budget 2000
  robofeedback train --env panda:PandaReach-v3 --reward clip --goal "the gripper touches the green target" \
      --baseline "a robot arm" --alpha 0.5
  robofeedback train --env metaworld:drawer-open --reward varp --judge clip --sketch --agent-reg 0.1
  robofeedback train --env bullet:AntBulletEnv-v0 --algo ppo --reward heron \
      --factors progress,alive,joints_at_limit,feet_collision --sigma 1,1,0.5,0.5
  robofeedback icpl --env panda:PandaReach-v3 --task "move the gripper to the green target" --iterations 3 \
      --candidates 4 --llm http://localhost:8000/v1 --model qwen2.5-coder --judge script
  robofeedback video-reward --env metaworld:drawer-close --expert assets/videos/metaworld-drawer-close-expert.mp4 \
      --iterations 5 --steps 6000
  robofeedback safe-mpc --game drone --simulated-human
  robofeedback rollout --env panda:PandaReach-v3 --policy runs/reach --episodes 5 --video --out runs/reach/rollouts
  robofeedback app --store runs/feedback.db --port 7860
  robofeedback train --env panda:PandaReachDense-v3 --reward preference --teacher human --store runs/feedback.db
  robofeedback demo --auto
  robofeedback store check --store runs/feedback.db
  robofeedback store backup --store runs/feedback.db runs/feedback-backup.db
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robofeedback",
        description="Learn robot rewards and safety constraints from human and AI feedback.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the environments that can be made here")
    p.add_argument("--family", help="list only this family (panda, metaworld, bullet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--describe", metavar="SPEC", help="make this env and print its spaces and reward factors")

    p = sub.add_parser(
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
    g = p.add_argument_group("preference learning (--reward preference)")
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

    g = p.add_argument_group("HERON (--reward heron; the preference-learning options above apply too)")
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

    g = p.add_argument_group("VARP (--reward varp; the preference-learning options above apply too)")
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

    g = p.add_argument_group("CLIP reward (--reward clip)")
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

    p = sub.add_parser(
        "icpl",
        help="ICPL: an LLM writes reward code, policies train on it, a judge ranks them, the LLM refines",
        description="In-context preference learning of reward code. Without --llm or --replay the offline "
        "factor-weight proposer (no LLM) writes the candidates. Everything goes to --out: per iteration and "
        "candidate the prompt, response, code, reward trace, video and score; summary.json.",
    )
    p.add_argument("--env", required=True, help="env spec, as for train")
    p.add_argument("--task", default=None, help="the task in words (default: the env's known task text)")
    p.add_argument("--iterations", type=positive_int, default=5, help="rounds of proposals (default 5)")
    p.add_argument("--candidates", type=positive_int, default=6, help="reward functions per round (default 6)")
    p.add_argument("--steps", type=positive_int, default=5000, help="env steps per candidate policy (default 5000)")
    add_llm_arguments(p, temperature=1.0)
    p.add_argument(
        "--judge",
        default="script",
        choices=["script", "human", "app"],
        help="who ranks: 'script' (success, then env return), 'human' (you, at this terminal) or 'app' "
        "(people in the annotation app, through --store)",
    )
    p.add_argument("--store", default="runs/feedback.db", help="feedback store for --judge app")
    p.add_argument("--n-jobs", type=positive_int, default=1, help="candidates trained in parallel (default 1)")
    add_executor_arguments(p, "candidates")
    p.add_argument("--config", default=None, help="YAML training config for the candidates, as for train")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/icpl-<env>)")

    p = sub.add_parser(
        "video-reward",
        help="bi-level reward learning from an expert video: a judge compares videos, an LLM updates the reward",
        description="Learn reward code from a video of an expert: each iteration trains a policy on the current "
        "code, a judge compares a video of it with the expert's (--judge clip: the offline CLIP + time-warping "
        "judge; --judge chat: a vision chat model), and the lower level (--llm or --replay; without them the "
        "offline factor-weight updater, which needs --judge clip) writes the next code. Everything goes to "
        "--out, one folder per iteration (code, side-by-side video, feedback, similarity); rerunning the "
        "same command continues an interrupted run.",
    )
    p.add_argument("--env", required=True, help="env spec, as for train")
    p.add_argument("--expert", required=True, help="the expert's video (mp4, webm, ...) or a folder of frames")
    p.add_argument("--task", default=None, help="the task in words (default: the env's known task text)")
    p.add_argument("--iterations", type=positive_int, default=5, help="iterations (default 5)")
    p.add_argument("--steps", type=positive_int, default=5000, help="env steps per policy (default 5000)")
    p.add_argument("--fps", type=float, default=20.0, help="frames per second the videos are compared at")
    p.add_argument("--start", type=float, default=None, help="trim the expert video: start, in seconds")
    p.add_argument("--end", type=float, default=None, help="trim the expert video: end, in seconds")
    p.add_argument("--frames-fps", type=float, default=None, help="frame rate of a folder of expert frames")
    p.add_argument("--judge", default="clip", choices=["clip", "chat"], help="upper level (default clip, offline)")
    p.add_argument("--clip-model", default="mini", help="--judge clip: 'mini' (shipped) or an open_clip model")
    p.add_argument("--vlm-url", default=None, help="--judge chat: base URL of an OpenAI-compatible vision server")
    p.add_argument("--vlm-model", default=None, help="--judge chat: the vision model's name on that server")
    p.add_argument("--vlm-key-env", default="OPENAI_API_KEY", help="--judge chat: env variable with its API key")
    p.add_argument("--prompts", default=None, help="--judge chat: folder with your own video_compare.txt")
    p.add_argument("--video-frames", type=positive_int, default=8, help="--judge chat: frames sent per video")
    p.add_argument("--video-layout", default="grid", choices=["grid", "sequence"], help="--judge chat: frames as")
    add_llm_arguments(p, temperature=0.7)
    p.add_argument("--config", default=None, help="YAML training config for the policies, as for train")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default runs/video-reward-<env>)")

    p = sub.add_parser(
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

    p = sub.add_parser(
        "rollout",
        help="roll a policy out and save trajectories (and a video)",
        description="Roll a trained policy (or random actions) out, save each trajectory as .npz and optionally "
        "an mp4 of all episodes, and print returns and success.",
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

    p = sub.add_parser(
        "app",
        help="the annotation app: people label queries from the feedback store in a browser",
        description="Serve the annotation app over a feedback store: pairwise preferences, rankings, corrections "
        "and factor rankings, and the status of the runs training on them. Start it before or after the trainers.",
    )
    add_app_arguments(p, "runs/feedback.db")
    _store_parser(sub)
    _annotators_parser(sub)

    p = sub.add_parser(
        "demo",
        help="the main job: the annotation app with SAC learning panda reach from the preferences given in it",
        description="Start the annotation app and a trainer (SAC on panda:PandaReachDense-v3, reward learned from "
        "the preferences given in the app) and print the URL. With --auto a scripted Oracle answers through the "
        "app's HTTP endpoints, the path a browser uses, so that the whole loop runs unattended.",
    )
    add_app_arguments(p, "runs/demo/feedback.db")
    p.add_argument("--auto", action="store_true", help="a scripted teacher answers the queries (no person needed)")
    p.add_argument(
        "--teacher",
        choices=["oracle", "mistake"],
        default="oracle",
        help="with --auto, who answers: the Oracle (always right) or Mistake (wrong on 10%% of answers, at random)",
    )
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the comparison run at the end (SAC on the env's own reward, same steps and seed)",
    )
    p.add_argument("--steps", type=positive_int, default=12_000, help="env steps to train (default 12000)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default="runs/demo", help="training output folder (default runs/demo)")
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        help="seconds each feedback round waits for its answers (default 60 with --auto, 300 for a person)",
    )
    p.add_argument("--keep-serving", action="store_true", help="keep the app up after training, until Ctrl-C")
    p.add_argument(
        "--config", default=None, help="training settings, YAML (default: configs/demo.yaml, which says what they mean)"
    )

    from robofeedback.bench import suite

    p = sub.add_parser(
        "bench",
        help="the benchmark suite: every reward module and the baselines on the same tasks, with a report",
        description=suite.__doc__.split("\n\n")[0] + " " + suite.__doc__.split("\n\n")[1],
    )
    suite.add_arguments(p)
    return parser


def _store_parser(sub) -> None:
    p = sub.add_parser(
        "store",
        help="check, back up, export or import a feedback store",
        description="The lab's tools for its feedback store. check runs the full integrity and schema checks and "
        "prints the counts; backup copies a SQLite store with SQLite's online backup (safe while trainers and the "
        "app write); export writes every row as JSONL; import adds an export's rows, checked like the API's, all or "
        "none.",
    )
    add_store_argument(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("check", help="integrity and schema check, and counts")
    actions.add_parser("backup", help="online backup to a new file").add_argument("to", help="the backup's path")
    actions.add_parser("export", help="every row as JSONL").add_argument("to", help="the .jsonl file to write")
    actions.add_parser("import", help="add the rows of an export").add_argument("jsonl", help="an export's path")


def _annotators_parser(sub) -> None:
    p = sub.add_parser(
        "annotators",
        help="register the people and programs that may label through the app, and revoke them",
        description="Each annotator gets a secret, shown once and kept in the store only as a hash. People log in to "
        "the app with their name and secret; programs (script:*, vlm:*, llm:*) send theirs as a Bearer token. Once "
        "a person is registered, the app asks everyone to log in.",
    )
    add_store_argument(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register NAME and print its secret")
    add.add_argument("name", help="a person's name (alice), or with --program a source such as script:oracle")
    add.add_argument("--program", action="store_true", help="NAME is a program's source (script:, vlm:, llm:)")
    add.add_argument("--replace", action="store_true", help="issue a new secret to NAME (the old one stops working)")
    actions.add_parser("list", help="every annotator, live or revoked")
    actions.add_parser("revoke", help="revoke NAME's secret").add_argument("name")


def cmd_envs(args: argparse.Namespace) -> int:
    from robofeedback.envs import FAMILIES, available, make

    if args.describe:
        env = make(args.describe)
        description = env.describe()
        env.close()
        if args.json:
            print(json.dumps(description, indent=2))
            return 0
        print(f"{description['spec']} ({description['family']})")
        print(f"  observation space: {description['observation_space']}")
        print(f"  action space:      {description['action_space']}")
        print("  reward factors (info['factors']; + higher is better, - a cost):")
        for name, factor in description["factors"].items():
            sign = {1: "+", -1: "-"}.get(factor["sign"], "?")
            print(f"    {sign} {name}: {factor['description']}")
        return 0
    if args.family and args.family not in FAMILIES:
        print(f"unknown family {args.family!r}; choose from {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    info = available()
    if args.family:
        info = {args.family: info[args.family]}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for family, entry in info.items():
        state = "installed" if entry["installed"] else f"not installed (pip install 'robofeedback[{entry['extra']}]')"
        print(f"{family}: {entry['description']} - {state}")
        for env_id in entry["ids"]:
            print(f"  {family}:{env_id}")
    print("gym: any registered Gymnasium id, e.g. Pendulum-v1")
    return 0


TEACHER_ARG = {"stochastic": "beta", "mistake": "eps", "skip": "threshold", "equal": "threshold", "myopic": "gamma"}


def _feedback_source(args: argparse.Namespace):
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


def _numbers(text: str | None, name: str, cast=float) -> list | None:
    if text is None:
        return None
    try:
        return [cast(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name} takes comma-separated numbers, got {text!r}") from None


def _heron_judge(args: argparse.Namespace):
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


def _feedback_overrides(args: argparse.Namespace) -> dict:
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


def _preference_overrides(args: argparse.Namespace) -> dict:
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


def _judge(args: argparse.Namespace):
    from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge, task_prompts

    if args.judge == "teacher":
        return _feedback_source(args)
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


def _clip_reward(args: argparse.Namespace):
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


def cmd_train(args: argparse.Namespace) -> int:
    from robofeedback.config import deep_merge, load_yaml
    from robofeedback.rl.train import train

    out = args.out or f"runs/{args.env.replace(':', '-')}-{args.algo}-s{args.seed}"
    config = load_yaml(args.config) if args.config else {}
    feedback = None
    reward = _clip_reward(args) if args.reward == "clip" else args.reward
    if args.reward in ("preference", "varp", "heron"):
        feedback = {"preference": _feedback_source, "varp": _judge, "heron": _heron_judge}[args.reward](args)
        config = deep_merge(config, _feedback_overrides(args))
    if args.reward in ("preference", "varp", "heron"):
        model = _preference_overrides(args)
        if args.reward == "heron" and args.level_scale is not None:
            model["level_scale"] = args.level_scale
        config = deep_merge(config, {"preference": model})
    if args.reward == "varp" and args.agent_reg is not None:
        config = deep_merge(config, {"preference": {"agent_reg": args.agent_reg}})
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


def cmd_icpl(args: argparse.Namespace) -> int:
    from robofeedback.config import load_yaml
    from robofeedback.feedback.vlm import task_prompts
    from robofeedback.parallel import make_executor
    from robofeedback.rewards.icpl import ICPL, ScriptedRanker, StoreRanker, TerminalRanker

    task = args.task or task_prompts(args.env).get("task")
    if not task:
        raise ValueError(f'icpl needs --task "<the task in words>": no task text is known for {args.env}')
    proposer = chat_client(args)
    ranker = {"script": ScriptedRanker, "human": TerminalRanker, "app": lambda: StoreRanker(args.store)}[args.judge]()
    out = args.out or f"runs/icpl-{args.env.replace(':', '-')}"
    executor = make_executor(args.executor, args.n_jobs, args.address)
    loop = ICPL(
        args.env,
        task,
        proposer=proposer,
        ranker=ranker,
        iterations=args.iterations,
        candidates=args.candidates,
        train_steps=args.steps,
        config=load_yaml(args.config) if args.config else None,
        executor=executor,
        out_dir=out,
        seed=args.seed,
        temperature=args.temperature,
        info_keys=info_keys(args),
    )
    with executor:
        summary = loop.run()
    for row in summary["iterations"]:
        print(
            f"iteration {row['iteration']}: best {row['best']} (success {row['best_success_rate']}, "
            f"env return {row['best_env_return']:.1f}), worst {row['worst']}"
        )
    best = summary["best"]
    print(f"best reward: {best['name']}, success {best['success_rate']}; code in {out}; summary {out}/summary.json")
    return 0


def cmd_video_reward(args: argparse.Namespace) -> int:
    from robofeedback.config import load_yaml
    from robofeedback.feedback.vlm import ChatVLMJudge, ClipVideoJudge, task_prompts
    from robofeedback.rewards.bilevel import BilevelVideoReward

    task = args.task or task_prompts(args.env).get("task")
    if not task:
        raise ValueError(f'video-reward needs --task "<the task in words>": no task text is known for {args.env}')
    if args.judge == "chat":
        if not (args.vlm_url and args.vlm_model):
            raise ValueError("--judge chat needs --vlm-url and --vlm-model (an OpenAI-compatible vision server)")
        judge = ChatVLMJudge(
            task,
            base_url=args.vlm_url,
            model=args.vlm_model,
            api_key_env=args.vlm_key_env,
            prompts=args.prompts,
            video_frames=args.video_frames,
            video_layout=args.video_layout,
        )
    else:
        judge = ClipVideoJudge(model=args.clip_model)
    out = args.out or f"runs/video-reward-{args.env.replace(':', '-')}"
    loop = BilevelVideoReward(
        args.env,
        args.expert,
        task,
        judge=judge,
        llm=chat_client(args),
        train_steps=args.steps,
        config=load_yaml(args.config) if args.config else None,
        out_dir=out,
        seed=args.seed,
        fps=args.fps,
        start=args.start,
        end=args.end,
        frames_fps=args.frames_fps,
        temperature=args.temperature,
        info_keys=info_keys(args),
    )
    summary = loop.run(args.iterations)
    for row in summary["iterations"]:
        print(
            f"iteration {row['iteration']}: similarity to the expert {row['similarity']:.3f}, "
            f"success {row['success_rate']}, env return {row['mean_env_return']:.1f}"
        )
    best = summary["best"]
    print(
        f"most expert-like: iteration {best['iteration']} (similarity {best['similarity']:.3f}); videos, "
        f"feedback and code in {out}/iter<i>; summary {out}/summary.json"
    )
    return 0


def cmd_safe_mpc(args: argparse.Namespace) -> int:
    from dataclasses import fields

    import numpy as np

    from robofeedback.data.store import FeedbackStore
    from robofeedback.data.video import write_video
    from robofeedback.envs import make
    from robofeedback.safety.alignment import SimulatedHuman, StoreHuman, TerminalHuman, align

    env = make(f"safety:{args.game}", seed=args.seed, render_size=224, misspecified=args.misspecified)
    out = Path(args.out or f"runs/safe-mpc-{args.game}")  # made once the game is known to exist
    out.mkdir(parents=True, exist_ok=True)
    store = FeedbackStore(args.store or out / "feedback.db")
    run = f"safe-mpc-{args.game}-s{args.seed}"
    if args.human == "terminal":
        human = TerminalHuman(frame_path=str(out / "frame.png"))
    elif args.human == "app":
        human = StoreHuman(store, run=run, wait_seconds=args.wait, frame_dir=out / "frames")
    else:
        human = SimulatedHuman(env.game.theta_true, noise=args.noise, seed=args.seed)
    trial = align(
        env,
        human,
        episodes=args.episodes,
        seed=args.seed,
        store=store,
        run=run,
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
    print(f"corrections in {store} (run {run}); trial in {out / 'trial.json'}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    import numpy as np

    from robofeedback.data import collect, write_video
    from robofeedback.envs import make
    from robofeedback.rl.train import ALGOS

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
    )
    out = Path(args.out)
    for i, t in enumerate(trajectories):
        t.save(out / f"traj_{i:03d}.npz")
        success = "" if t.success is None else f", success {bool(t.success.any())}"
        print(f"episode {i}: {len(t)} steps, env return {t.env_return:.2f}{success}")
    if args.video:
        path = write_video(np.concatenate([t.frames for t in trajectories]), out / "rollout.mp4", fps=25)
        print(f"video: {path}")
    print(f"trajectories: {out}/traj_*.npz")
    env.close()
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    server = app_server(args)
    print(f"annotation app on {server.url} (store {args.store}); Ctrl-C to stop", flush=True)
    print(f"access: {server.access}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from robofeedback.apps.auto import AutoAnnotator
    from robofeedback.bench.preference import heldout_accuracy
    from robofeedback.config import config_dir, deep_merge, load_yaml
    from robofeedback.feedback.sources import HumanQueue
    from robofeedback.rl.train import train

    if args.teacher != "oracle" and not args.auto:
        raise ValueError("--teacher chooses the scripted teacher of --auto; without --auto a person answers")
    start = time.time()
    server = app_server(args)
    print(f"annotation app: {server.url}  (store {args.store})\naccess: {server.access}", flush=True)
    auto = None
    if args.auto:
        auto = AutoAnnotator(server.url, args.store, args.teacher, seed=args.seed).start()
        print(f"a scripted teacher ({auto.teacher.source}) answers through the app's HTTP endpoints", flush=True)
    else:
        print("open the URL, enter your name and compare the clips; training waits for each round's answers")
    wait = args.wait if args.wait is not None else (60.0 if args.auto else 300.0)
    task, config = "panda:PandaReachDense-v3", load_yaml(args.config or config_dir() / "demo.yaml")
    print(f"progress: one line per evaluation, also in {Path(args.out) / 'progress.log'}", flush=True)
    try:
        result = train(
            task,
            reward="preference",
            algo="sac",
            total_steps=args.steps,
            seed=args.seed,
            out_dir=args.out,
            config=config,
            feedback=HumanQueue(wait_seconds=wait),
            store=args.store,
            task="to move the gripper's tip onto the green target",
            progress=False,
            echo=True,
        )
    finally:
        if auto is not None:
            auto.stop()
    final, fb = result.final_eval, result.feedback
    success = final.get("success_rate", float("nan"))
    fresh = heldout_accuracy(result.out_dir, task, config, result.model, args.seed)
    print(
        f"learned reward: agrees with the env's reward on {fresh:.2f} of 500 fresh segment pairs (final policy and "
        f"random actions); on the last round's {fb['selection']}-picked queries, before learning them: "
        f"{fb.get('heldout_accuracy', float('nan')):.2f}"
    )
    print(f"video: {result.video}\nlearning curve: {result.learning_curve}", flush=True)
    record = {
        "teacher": args.teacher if args.auto else "people",
        "seed": args.seed,
        "steps": result.steps,
        "eval_episodes": result.config.eval_episodes,
        "success_rate": success,
        "labels": fb["labels"],
        "wall_time_s": round(time.time() - start, 1),
        "reward_accuracy_fresh_pairs": fresh,
    }
    summary = (
        f"demo: success {success:.2f} on {result.config.eval_episodes} evaluation episodes after {result.steps} "
        f"steps, from {fb['labels']} labels given in the app, {record['wall_time_s']:.0f} s"
    )
    if not args.no_compare:
        print("comparison: SAC on the env's own reward, same steps and seed ...", flush=True)
        true = train(
            task,
            reward="env",
            algo="sac",
            total_steps=args.steps,
            seed=args.seed,
            out_dir=Path(args.out) / "true-reward",
            config=deep_merge(config, {"video_episodes": 0}),
            resume=False,
            progress=False,
        )
        summary += (
            f"; SAC on the env's own reward: success {true.final_eval.get('success_rate', float('nan')):.2f} "
            f"({time.time() - start:.0f} s in all)"
        )
        record["true_reward_success_rate"] = true.final_eval.get("success_rate")
    print(summary, flush=True)
    (Path(args.out) / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    with open(Path(args.out) / "progress.log", "a") as f:
        f.write(summary + "\n")
    if args.keep_serving:
        print(f"the app stays up on {server.url}; Ctrl-C to stop", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    server.stop()
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from robofeedback.data.store import FeedbackStore

    if args.action != "import" and "://" not in args.store and not Path(args.store).is_file():
        raise FileNotFoundError(f"no feedback store at {args.store}")
    store = FeedbackStore(args.store)
    if store.migration is not None:
        print(store.migration)
    if args.action == "check":
        print(json.dumps({"store": repr(store), "integrity": "ok", **store.check()}, indent=2))
    elif args.action == "backup":
        print(f"backed {store!r} up to {store.backup(args.to)}")
    elif args.action == "export":
        print(f"wrote {store.export_jsonl(args.to)}: {json.dumps(store.counts())}")
    else:
        print(f"imported {args.jsonl} into {store!r}: {json.dumps(store.import_jsonl(args.jsonl))}")
    return 0


def cmd_annotators(args: argparse.Namespace) -> int:
    import time

    from robofeedback.data.annotators import AnnotatorRegistry
    from robofeedback.data.store import FeedbackStore

    registry = AnnotatorRegistry(FeedbackStore(args.store))
    if args.action == "add":
        source, secret = registry.add(args.name, program=args.program, replace=args.replace)
        login = "send it as 'Authorization: Bearer <secret>'" if args.program else f"log in as {args.name!r}"
        print(f"{source}: secret {secret}\n(shown once; the store keeps only its hash; {login})")
    elif args.action == "list":
        for annotator in registry.list():
            state = "revoked" if annotator.revoked_at is not None else "live"
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(annotator.created_at))
            print(f"{annotator.source}\t{state}\tsince {since}")
    else:
        print(f"revoked {registry.revoke(args.name)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from robofeedback.bench.suite import run_command

    return run_command(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "envs": cmd_envs,
        "train": cmd_train,
        "icpl": cmd_icpl,
        "video-reward": cmd_video_reward,
        "safe-mpc": cmd_safe_mpc,
        "rollout": cmd_rollout,
        "app": cmd_app,
        "demo": cmd_demo,
        "store": cmd_store,
        "annotators": cmd_annotators,
        "bench": cmd_bench,
    }
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"robofeedback {args.command}: error: {e}", file=sys.stderr)
        return 2
