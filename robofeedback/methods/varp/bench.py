"""VARP's bench entries: SAC on a CLIP judge's labels with the agent regularization, and how often each judge
agrees with the true reward, with and without the trajectory sketch.

``robofeedback bench --suite varp`` is the study (``configs/bench/suites/varp.yaml``), in two parts (an entry's
``part``):

- ``policy`` (the default): SAC on the labels of a CLIP judge with the entry's ``goal``/``baseline`` prompts
  (``alpha``, default 1), ``budget`` labels, agent regularization ``lambda`` (default 0.1); the study runs
  lambda = 0 and lambda > 0 on the same seeds: the figure is the effect of the regularization at this budget.
- ``judges``: segments from scripted-expert, noisy-expert and random rollouts of the task; random pairs of them
  whose returns differ are labelled by the Oracle (segment return under the env's reward) and by each judge on
  the plain last frame and on the sketched one. Reported: agreement with the Oracle on the pairs the judge
  labelled, and the share it labelled; for reference, the same for labels from the env's reward at each
  segment's last step alone (what one final frame can show at best). The chat judge runs when ``vlm_url`` and
  ``vlm_model`` name a server. ``judge_examples.png`` in the entry's folder shows sketched segments, to check by
  eye.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from robofeedback.config import deep_merge
from robofeedback.data.rollout import collect
from robofeedback.envs import make
from robofeedback.envs.experts import expert
from robofeedback.envs.tasks import task_prompts
from robofeedback.feedback.teachers import oracle
from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge
from robofeedback.methods.bench import EntryError, LabelledEntry, prompts, train_entry, with_budget

BEHAVIOURS = [("expert", 0.0), ("expert", 0.5), ("expert", 1.5), ("random", None)]
RENDER_SIZE = 128
PARTS = ("policy", "judges")


@dataclass(frozen=True, kw_only=True)
class VarpEntry(LabelledEntry):
    """A VARP bench entry: its ``part``; the CLIP judge's prompts and ``alpha``; ``lambda`` for the policy part;
    for the judges part, the segments (``episodes`` per behaviour, ``segment_length``, the env's ``env_kwargs``),
    the ``pairs`` labelled, and a chat judge's server (``vlm_url``, ``vlm_model``)."""

    part: str = "policy"
    goal: str | None = None
    baseline: str | None = None
    alpha: float = 1.0
    agent_reg: float = 0.1
    episodes: int = 3
    pairs: int = 200
    segment_length: int = 50
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    vlm_url: str | None = None
    vlm_model: str | None = None

    YAML_KEYS = {"lambda": "agent_reg"}

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise EntryError(f"a varp entry's part is one of {', '.join(PARTS)}, got {self.part!r}")


def _segments(settings: VarpEntry) -> tuple[Any, list]:
    """Segments of ``segment_length`` steps cut at random from every behaviour's rollouts."""
    seed = settings.seed
    env = make(settings.task, seed=seed, render_size=RENDER_SIZE, **settings.env_kwargs)
    rng = np.random.default_rng(seed)
    length = settings.segment_length
    segments = []
    for i, (kind, noise) in enumerate(BEHAVIOURS):
        policy = expert(env, noise=noise, seed=seed + i) if kind == "expert" else None
        for trajectory in collect(env, policy, n_episodes=settings.episodes, render=True, seed=seed + 100 * i):
            if len(trajectory) < length:
                continue
            for start in rng.integers(0, len(trajectory) - length + 1, size=3):
                segments.append(trajectory.segment(int(start), int(start) + length))
    return env, segments


def judges(settings: VarpEntry, folder: Path) -> dict[str, Any]:
    """Agreement of each judge with the Oracle on the same pairs of the task, sketched and plain."""
    env, segments = _segments(settings)
    rng = np.random.default_rng(settings.seed)
    pairs = []
    while len(pairs) < settings.pairs:
        i, j = rng.choice(len(segments), size=2, replace=False)
        a, b = segments[i], segments[j]
        if a.trajectory is not b.trajectory and a.env_return != b.env_return:  # the Oracle must have a view
            pairs.append((a, b))
    truth = oracle().label_many(pairs)
    known = task_prompts(settings.task)
    goal, baseline = settings.goal or known["goal"], settings.baseline or known["baseline"]
    variants = []
    for sketched in (False, True):
        clip = ClipJudge(goal, baseline, alpha=settings.alpha, sketch=sketched, camera=env.camera_at)
        variants.append((f"clip-mini (alpha {settings.alpha:g})", sketched, clip))
        if settings.vlm_url and settings.vlm_model:
            chat = ChatVLMJudge(
                known["task"],
                base_url=settings.vlm_url,
                model=settings.vlm_model,
                sketch=sketched,
                camera=env.camera_at,
            )
            variants.append((f"chat {settings.vlm_model}", sketched, chat))
    # A reference, not a judge: the env's reward at the last step only, the best a one-frame view can know
    last_step = [
        "equal" if a.env_rewards[-1] == b.env_rewards[-1] else "a" if a.env_rewards[-1] > b.env_rewards[-1] else "b"
        for a, b in pairs
    ]
    rows, right = [], {}
    for name, sketched, judge in [("last-step env reward (reference)", None, None), *variants]:
        start = time.time()
        labels = last_step if judge is None else [value for value, _ in judge.label_many(pairs)]
        agreed = [v == t if t in "ab" and v in ("a", "b") else None for t, v in zip(truth, labels, strict=True)]
        right[name, sketched] = agreed
        both = [(t, v) for t, v in zip(truth, labels, strict=True) if t in "ab" and v in ("a", "b")]
        row = {
            "task": settings.task,
            "judge": name,
            "sketch": sketched,
            "pairs": len(pairs),
            "labelled": len(both),
            "coverage": round(len(both) / len(pairs), 3),
            "agreement": round(float(np.mean([t == v for t, v in both])), 3) if both else None,
            "seconds": round(time.time() - start, 1),
        }
        if sketched:
            row["vs_plain"] = paired_difference(right[name, False], right[name, True])
        rows.append(row)
        print(json.dumps(row))
    imageio.imwrite(folder / "judge_examples.png", np.concatenate([variants[1][2].image(p[0]) for p in pairs[:4]], 1))
    env.close()
    setup = {"episodes_per_behaviour": settings.episodes, "behaviours": BEHAVIOURS, "render_size": RENDER_SIZE}
    return {"judges": rows, "setup": setup}


def paired_difference(plain: list[bool | None], sketched: list[bool | None]) -> dict[str, Any]:
    """Whether the sketch changed a judge's agreement with the Oracle on the same pairs: McNemar's exact test on the
    pairs both labelled (``b``: only the plain frame agreed, ``c``: only the sketched one), and the pairs a study
    would need for the difference seen to be significant (two-sided alpha 0.05, power 0.8; Connor 1987), None when
    it saw no difference.

    >>> paired_difference([True] * 40 + [False] * 60, [True] * 60 + [False] * 40)["p_value"] < 0.001
    True
    """
    both = [(p, s) for p, s in zip(plain, sketched, strict=True) if p is not None and s is not None]
    n = len(both)
    b = sum(p and not s for p, s in both)
    c = sum(s and not p for p, s in both)
    tail = sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c) if b + c else 1.0
    needed = None
    if n and b != c:
        discordant, delta = (b + c) / n, (c - b) / n
        z_alpha, z_power = 1.959964, 0.841621
        root = z_alpha * math.sqrt(discordant) + z_power * math.sqrt(max(discordant - delta**2, 0.0))
        needed = math.ceil(root**2 / delta**2)
    return {"pairs": n, "plain_only": b, "sketched_only": c, "p_value": min(1.0, 2 * tail), "pairs_needed": needed}


def run_entry(entry: dict[str, Any], folder: Path, executor) -> dict[str, Any]:
    """Run the entry's part: train on the CLIP judge's labels with agent regularization ``lambda``, or measure the
    judges' agreement with the Oracle."""
    settings = VarpEntry.from_dict(entry)
    if settings.part == "judges":
        return judges(settings, folder)
    goal, baseline = prompts(entry)
    judge = ClipJudge(goal, baseline, alpha=settings.alpha)
    config = deep_merge(with_budget(entry), {"preference": {"agent_reg": settings.agent_reg}})
    return {**train_entry(entry, folder, "varp", judge, config), "lambda": settings.agent_reg}


def report(rows: list[dict[str, Any]]) -> list[str]:
    """VARP's section: the judges' agreement with the Oracle, and, where a task ran more than one lambda, the
    policy runs side by side."""
    lines = []
    judged = [r for r in rows if "judges" in r]
    if judged:
        setup = judged[0]["setup"]
        lines += [
            "## VARP: judge agreement with the Oracle (segment return), plain last frame vs sketched",
            "",
            f"Segments from {setup['episodes_per_behaviour']} episodes of each behaviour (scripted expert with "
            f"action noise 0, 0.5, 1.5, and random actions), 3 random windows per episode, frames "
            f"{setup['render_size']} px; random pairs across episodes; sketched examples in each entry's "
            "judge_examples.png.",
            "",
            "The sketch's effect, on the pairs both images were labelled: McNemar's exact p, and the pairs a study "
            "would need for the difference seen to be significant (alpha 0.05, power 0.8). VARP's claim is that the "
            "sketch raises a VLM's agreement.",
            "",
            "| task | seed | judge | image | pairs | labelled | agreement with Oracle | sketch vs plain: p "
            "| pairs needed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for entry in judged:
            for r in entry["judges"]:
                image = {None: "-", False: "plain", True: "sketched"}[r["sketch"]]
                test = r.get("vs_plain")
                effect = f"{test['p_value']:.3g} | {test['pairs_needed'] or 'no difference'}" if test else "- | -"
                lines.append(
                    f"| {r['task']} | {entry['seed']} | {r['judge']} | {image} | {r['pairs']} | {r['coverage']:.0%} "
                    f"| {r['agreement']} | {effect} |"
                )
        if not any(r["judge"].startswith("chat") for entry in judged for r in entry["judges"]):
            lines.append("")
            lines.append("Chat VLM judge: not testable here: no chat VLM (give an entry vlm_url: and vlm_model:).")
        lines.append("")
    policy = [r for r in rows if "lambda" in r]
    compared = [r for r in policy if len({p["lambda"] for p in policy if p["task"] == r["task"]}) > 1]
    if compared:
        lines += [
            "## VARP: SAC on CLIP-judge labels (sketched), with and without the agent regularization",
            "",
            "| task | lambda | seed | steps | labels | success rate | env return | reward acc. (new labels) "
            "| wall time s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in compared:
            lines.append(
                f"| {r['task']} | {r['lambda']:g} | {r['seed']} | {r['steps']} | {r['labels']} | {r['success_rate']} "
                f"| {r['mean_env_return']:.1f} | {r['reward_accuracy_heldout']} | {r['wall_time_s']} |"
            )
        lines.append("")
    return lines
