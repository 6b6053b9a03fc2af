"""``robofeedback reward fit``: learn a preference reward model offline from an exported dataset."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from robofeedback.cli.common import positive_int
from robofeedback.data.dataset import read_dataset
from robofeedback.envs import BackendNotInstalledError, UnknownEnvError, make, policy_env_kwargs
from robofeedback.rewards.metrics import coverage, reward_metrics
from robofeedback.rewards.offline import fit_from_dataset, labelled_pairs, load_pretrained, model_for
from robofeedback.rl.train import TrainConfig, family_of, load_train_config
from robofeedback.seeding import stream_seed

COVERAGE_EPISODES = 16  # as the benchmark measures reward models


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``reward`` command's arguments."""
    p = subparsers.add_parser(
        "reward",
        help="learn a reward model offline from a dataset",
        description="fit trains the preference reward model on an exported dataset's preference labels with no env "
        "running, holds a share of them out to score it, and writes the model as a folder (config.json, "
        "model.safetensors, a model card) that `train --reward-model` and PreferenceReward.from_pretrained open. When "
        "the dataset's env can be made here, it also reports the benchmark's reward-model metrics on random-action "
        "episodes.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = actions.add_parser("fit", help="fit a reward model on a dataset's preference labels")
    fit.add_argument("--dataset", required=True, help="a folder `robofeedback dataset export` wrote")
    fit.add_argument("--out", required=True, help="the folder to write the model to")
    fit.add_argument("--source", action="append", help="only labels whose source matches, e.g. 'human:*' (repeat)")
    settings = fit.add_mutually_exclusive_group()
    settings.add_argument("--like", help="take the settings of this saved reward model (e.g. the online run's)")
    settings.add_argument("--config", help="a YAML file whose preference: section sets the model")
    fit.add_argument("--heldout", type=float, default=0.2, help="share of the labels held out to score (default 0.2)")
    fit.add_argument("--max-epochs", type=positive_int, help="at most this many passes over the labels")
    fit.add_argument("--seed", type=int, default=0, help="seed of the split, the networks and the metrics")
    fit.add_argument("--no-metrics", action="store_true", help="skip the metrics on the env even if it is here")
    fit.add_argument(
        "--compare",
        help="a saved reward model (e.g. the online run's reward_model/) to measure on the same episodes",
    )
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace, defaults: TrainConfig) -> dict:
    """The model's settings: a saved model's, or the family's defaults for the preference method under --config."""
    if args.like:
        saved = json.loads((Path(args.like) / "config.json").read_text())
        return {k: v for k, v in saved["config"].items() if k not in ("obs_dim", "act_dim")}
    return dict(defaults.preference)


def _env(spec: str, defaults: TrainConfig):
    """The dataset's env made as a policy's env of the preference method, or None with why when it cannot be."""
    try:
        return make(spec, **policy_env_kwargs(spec, defaults.env_kwargs)), None
    except (BackendNotInstalledError, UnknownEnvError, ImportError) as e:
        return None, str(e)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    dataset = read_dataset(args.dataset)
    pairs = labelled_pairs(dataset, args.source)
    specs = Counter(a.env_spec for a, _ in pairs.pairs)
    if len(specs) != 1:
        raise ValueError(f"one reward model learns one env's labels; the dataset's preferences span {dict(specs)}")
    (spec,) = specs
    if args.compare and args.no_metrics:
        raise ValueError("--compare measures both models on the env: leave out --no-metrics")
    needs_env = not (args.no_metrics and args.like)  # for the metrics, and for the goals' places without --like
    defaults = load_train_config(family_of(spec), "sac", 1, args.config, "preference")
    env, missing = _env(spec, defaults) if needs_env else (None, None)
    try:
        model = model_for(pairs, _settings(args, defaults), env)
        report = fit_from_dataset(model, pairs, args.heldout, args.seed, args.max_epochs)
        lengths = [len(a.actions) for a, _ in pairs.pairs]
        if env is not None and not args.no_metrics:
            seed = stream_seed(args.seed, "coverage")
            episodes = coverage(env, None, COVERAGE_EPISODES, seed)
            length = int(np.median(lengths))
            report["reward_metrics"] = reward_metrics(model, episodes, length, seed=seed)
            if args.compare:
                other = load_pretrained(args.compare).model
                report["compared"] = {"model": args.compare, **reward_metrics(other, episodes, length, seed=seed)}
        else:
            report["reward_metrics"] = f"not measured: {missing or 'not asked for'}"
    finally:
        if env is not None:
            env.close()
    card = {
        "env": spec,
        "labels": report["labels"],
        "sources": report["sources"],
        "heldout_accuracy": report["heldout_accuracy"],
        "license": dataset.meta.get("license", "unknown"),
    }
    out = model.save_pretrained(args.out, card)
    report = {"dataset": str(dataset.path), "env": spec, **report, "wall_s": round(time.perf_counter() - start, 1)}
    (out / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"reward model: {out} (train a policy on it: robofeedback train --env {spec} --reward-model {out})")
    return 0
