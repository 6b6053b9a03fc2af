"""The ``robofeedback`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys

from robofeedback import registry
from robofeedback.cli import annotators, app, bench, dataset, demo, envs, hub, minari, reward, rollout, store, train

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
  robofeedback rollout --env panda:PandaReach-v3 --episodes 5 --minari robofeedback/panda-reach/random-v0
  robofeedback minari queue robofeedback/panda-reach/random-v0 --store runs/feedback.db --videos runs/minari-clips
  robofeedback app --store runs/feedback.db --port 7860
  robofeedback train --env panda:PandaReachDense-v3 --reward preference --teacher human --store runs/feedback.db
  robofeedback demo --auto
  robofeedback store check --store runs/feedback.db
  robofeedback store backup --store runs/feedback.db runs/feedback-backup.db
  robofeedback dataset export --store runs/feedback.db --out runs/reach-labels --source 'human:*' --pseudonymise
  robofeedback dataset import runs/reach-labels --store runs/other.db
  robofeedback reward fit --dataset runs/reach-labels --out runs/reach-reward
  robofeedback train --env panda:PandaReachDense-v3 --reward-model runs/reach-reward --steps 8000
  robofeedback hub push runs/reach-labels --repo my-lab/reach-labels
"""


COMMANDS = (envs, train, rollout, minari, app, store, dataset, reward, hub, annotators, demo, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``robofeedback`` parser: ``envs`` and ``train``, the commands of the registered methods (``icpl``, ...),
    then the rest of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="robofeedback",
        description="Learn robot rewards and safety constraints from human and AI feedback.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS[:2]:
        command.add_parser(subparsers)
    for method in registry.methods().values():
        if method.add_commands is not None:
            method.add_commands(subparsers)
    for command in COMMANDS[2:]:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command that ``argv`` (default: the command line) names; its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, RuntimeError) as e:
        print(f"robofeedback {args.command}: error: {e}", file=sys.stderr)
        return 2
