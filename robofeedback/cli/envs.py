"""``robofeedback envs``: the environments that can be made here."""

from __future__ import annotations

import argparse
import json
import sys

from robofeedback.envs import available, families, make


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``envs`` command's arguments."""
    p = subparsers.add_parser("envs", help="list the environments that can be made here")
    p.add_argument("--family", help="list only this family (panda, metaworld, bullet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--describe", metavar="SPEC", help="make this env and print its spaces and reward factors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    if args.family and args.family not in families():
        print(f"unknown family {args.family!r}; choose from {', '.join(families())}", file=sys.stderr)
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
