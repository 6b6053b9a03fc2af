"""ICPL: in-context preference learning of reward code (Yu et al. 2024, arXiv 2410.17233; built on Eureka).

Each iteration:

1. a proposer writes K reward functions as code (an LLM through any chat client, or, with no LLM, the
   :class:`FactorProposer` baseline); candidates that are refused or fail are regenerated until K run,
   a bounded number of times;
2. a short SB3 policy is trained on each candidate (in parallel worker processes with ``n_jobs``), with
   the reward's components traced over training, and a video of each final policy is recorded;
3. a ranker picks the best and the worst (a scripted judge on the env's success and return, a person at
   the terminal, or people in the annotation app through the feedback store);
4. the next prompt holds the good and the bad code with their reward-component traces, the preference,
   and the history of how the best code changed between iterations (one extra LLM call each iteration).

Everything is written under ``out_dir/iter<i>/cand<j>/``: prompt, response, code, trace, video, score.
The loop trains policies (through :func:`robofeedback.methods.reward_code.train_candidate`): it is an outer loop
around training. The proposers keep :class:`~robofeedback.protocols.RewardProposer`, the rankers
:class:`~robofeedback.protocols.CandidateRanker`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robofeedback.data.store import FeedbackStore
from robofeedback.data.trajectory import Trajectory
from robofeedback.envs import make, policy_env_kwargs
from robofeedback.feedback.llm import OpenAICompatible, Replay
from robofeedback.methods.reward_code import train_candidate
from robofeedback.parallel import Executor, LocalExecutor
from robofeedback.protocols import CandidateRanker, RewardProposer
from robofeedback.rewards.code import INFO_KEYS, RewardCodeError, check_info_keys, extract_code
from robofeedback.rewards.codegen import (
    FEEDBACK_TIPS,
    SYSTEM_PROMPT,
    describe_env,
    factor_code,
    parse_weights,
    probe_transitions,
    smoke_test,
    trace_text,
)


@dataclass
class Candidate:
    """One reward function tried by the loop, with what training on it gave."""

    iteration: int
    index: int
    code: str
    response: str = ""
    error: str | None = None
    success_rate: float | None = None
    mean_env_return: float | None = None
    trace: dict[str, list[float]] = field(default_factory=dict)
    video: str | None = None
    out_dir: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def name(self) -> str:
        return f"iter{self.iteration}-cand{self.index}"


class LLMProposer:
    """Reward code from a chat model (``client.complete``), ICPL's prompts."""

    def __init__(self, client, task: str, env, temperature: float = 1.0, info_keys: Sequence[str] = INFO_KEYS):
        self.client, self.task, self.temperature = client, task, temperature
        self.system = SYSTEM_PROMPT
        self.first = f"The task: {task}\n\n{describe_env(env, info_keys)}\n\nWrite the reward function."
        self.history: list[str] = []
        self.feedback: str | None = None
        self.name = f"llm:{getattr(client, 'model', 'llm')}"

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": self.first}]
        if self.feedback is not None:
            messages.append({"role": "user", "content": self.feedback})
        return messages

    def propose(self, n: int, seed: int) -> list[tuple[str, str]]:
        """``n`` (code or "", response) pairs; code is "" where no code could be taken from the answer."""
        out = []
        for response in self.client.complete(self.messages(), n=n, temperature=self.temperature, seed=seed):
            try:
                out.append((extract_code(response), response))
            except RewardCodeError:
                out.append(("", response))
        return out

    def learn(self, good: Candidate, bad: Candidate, note: str, previous_good: Candidate | None) -> None:
        """Build the next prompt from the preferred and rejected code and how the best code changed."""
        if previous_good is not None and previous_good.code != good.code:
            question = [
                {
                    "role": "system",
                    "content": "You compare two Python reward functions and describe their "
                    "differences directly, in a few short points.",
                },
                {
                    "role": "user",
                    "content": f"Function A ({previous_good.name}):\n```python\n{previous_good.code}```"
                    f"\n\nFunction B ({good.name}):\n```python\n{good.code}```\n\nHow does B differ from A?",
                },
            ]
            (difference,) = self.client.complete(question, n=1, temperature=0.0, seed=0)
            self.history.append(
                f"From {previous_good.name} to {good.name}:\n{difference.strip()}\n"
                f"The policy trained on {previous_good.name} gave these reward traces:\n"
                f"{trace_text(previous_good.trace)}"
            )
        parts = []
        if self.history:
            parts.append(
                f"We have iterated {len(self.history) + 1} rounds. How the preferred reward function "
                "changed from round to round, and the traces it gave:\n\n" + "\n\n".join(self.history)
            )
        parts += [
            f"The preferred reward function ({good.name}):\n```python\n{good.code}```\n"
            f"Its components over training (about 10 points):\n{trace_text(good.trace)}",
            f"The rejected reward function ({bad.name}):\n```python\n{bad.code}```\n"
            f"Its components over training:\n{trace_text(bad.trace)}",
            "A person watched the videos of the policies trained on these rewards and preferred the first over "
            f"the second.{' Their note: ' + note if note else ''} Keep what makes the first better and move away "
            "from the second.",
            FEEDBACK_TIPS,
        ]
        self.feedback = "\n\n".join(parts)


class FactorProposer:
    """The baseline that needs no LLM: rewards as weighted sums of the env's named factors, mutated from the
    preferred candidate and away from the rejected one. Not an LLM; its code is labelled as generated."""

    def __init__(self, env, seed: int = 0, step: float = 0.5, noise: float = 0.3):
        self.factors = {name: f.sign for name, f in env.factor_info.items()}
        if not self.factors:
            raise ValueError(f"{env.spec_name} has no named reward factors for the offline proposer to weigh")
        self.rng = np.random.default_rng(seed)
        self.step, self.noise = step, noise
        self.good: dict[str, float] | None = None
        self.bad: dict[str, float] | None = None
        self.name = "offline:factor-weights"

    def propose(self, n: int, seed: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            if self.good is None:  # the first round: random positive weights with the factors' own signs
                weights = {k: s * float(self.rng.lognormal(0.0, 0.75)) for k, s in self.factors.items()}
            else:
                weights = {
                    k: self.good[k] + self.step * (self.good[k] - self.bad[k]) + self.noise * float(self.rng.normal())
                    for k in self.factors
                }
            out.append((factor_code(weights), "(generated by the offline factor-weight proposer, not an LLM)"))
        return out

    def learn(self, good: Candidate, bad: Candidate, note: str, previous_good: Candidate | None) -> None:
        self.good, self.bad = parse_weights(good.code), parse_weights(bad.code)


class ScriptedRanker:
    """Ranks candidates by the final policy's success rate, then its env return (the synthetic judge)."""

    name = "script:icpl-ranker"

    def rank(self, candidates: Sequence[Candidate]) -> tuple[int, int, str]:
        keys = [((c.success_rate if c.success_rate is not None else -math.inf), c.mean_env_return) for c in candidates]
        order = sorted(range(len(candidates)), key=lambda i: keys[i], reverse=True)
        best, worst = candidates[order[0]], candidates[order[-1]]
        note = (
            f"success {best.success_rate} vs {worst.success_rate}, "
            f"return {best.mean_env_return:.1f} vs {worst.mean_env_return:.1f}"
        )
        return order[0], order[-1], note


class TerminalRanker:
    """A person at the terminal watches the videos and types the best and the worst candidate."""

    name = "human:terminal"

    def __init__(self, ask=input, show=print):
        self.ask, self.show = ask, show

    def rank(self, candidates: Sequence[Candidate]) -> tuple[int, int, str]:
        for i, c in enumerate(candidates):
            self.show(f"[{i}] {c.name}: video {c.video}")
        while True:
            answer = self.ask("best and worst (e.g. '2 0'), then an optional note: ").split(maxsplit=2)
            try:
                best, worst = int(answer[0]), int(answer[1])
            except (IndexError, ValueError):
                self.show("type two candidate numbers")
                continue
            if best != worst and 0 <= best < len(candidates) and 0 <= worst < len(candidates):
                return best, worst, answer[2] if len(answer) > 2 else ""
            self.show(f"two different numbers from 0 to {len(candidates) - 1}")


class StoreRanker:
    """People in the annotation app rank the candidates' videos: a ranking query in the feedback store, waited
    for (polling every ``poll_seconds``, up to ``wait_seconds``)."""

    name = "human:app"

    def __init__(self, store, run: str = "icpl", wait_seconds: float = 3600.0, poll_seconds: float = 2.0):
        self.store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        self.run, self.wait_seconds, self.poll_seconds = run, wait_seconds, poll_seconds

    def rank(self, candidates: Sequence[Candidate]) -> tuple[int, int, str]:
        ids = []
        for c in candidates:
            trajectory = Trajectory.load(Path(c.out_dir) / "final_episode.npz")
            segment = trajectory.segment(0, len(trajectory))
            self.store.add_segments([segment], run=self.run, video_paths=[c.video])
            ids.append(segment.id)
        query = self.store.add_query("ranking", ids, run=self.run)
        deadline = time.monotonic() + self.wait_seconds
        while self.store.get_query(query).status == "pending":
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ranking of query {query} within {self.wait_seconds:g} s")
            time.sleep(self.poll_seconds)
        (label,) = [lb for lb in self.store.labels(kind="ranking", run=self.run) if lb.query_id == query]
        order = label.payload.get("order") or []
        best = label.payload.get("best") or order[0]
        worst = label.payload.get("worst") or order[-1]
        return ids.index(best), ids.index(worst), label.note or ""


def _train_job(job: tuple) -> dict[str, Any]:
    return train_candidate(*job)


class ICPL:
    """The ICPL loop on one env: ``iterations`` rounds of ``candidates`` reward functions, each trained for
    ``train_steps`` env steps, ranked, and used to prompt the next round.

    ``proposer`` is a chat client (anything with ``complete``, e.g. ``OpenAICompatible`` or ``Replay``) or
    ``None`` for the offline :class:`FactorProposer`; ``ranker`` defaults to :class:`ScriptedRanker`.
    ``config`` is the training config (as for ``train``); ``n_jobs`` trains candidates in parallel processes,
    or ``executor`` (a :class:`robofeedback.parallel.Executor`, e.g. on a Ray cluster) trains them where it runs jobs.
    Failed candidates are regenerated, at most ``max_rounds`` requests per iteration. ``info_keys`` are the keys
    of the env's info the reward code reads (the named reward factors and the agent's position by default; never
    the env's reward or success), and what the LLM is told it has.
    """

    def __init__(
        self,
        env: str,
        task: str,
        proposer: RewardProposer | OpenAICompatible | Replay | None = None,
        ranker: CandidateRanker | None = None,
        iterations: int = 5,
        candidates: int = 6,
        train_steps: int = 5000,
        config: dict | None = None,
        n_jobs: int = 1,
        executor: Executor | None = None,
        out_dir: str | Path = "runs/icpl",
        seed: int = 0,
        max_rounds: int = 5,
        temperature: float = 1.0,
        info_keys: Sequence[str] = INFO_KEYS,
    ):
        if candidates < 2:
            raise ValueError(f"candidates must be >= 2 (a best and a worst), got {candidates}")
        if min(iterations, train_steps, n_jobs, max_rounds) < 1:
            raise ValueError("iterations, train_steps, n_jobs and max_rounds must be >= 1")
        self.spec, self.task, self.seed = env, task, seed
        self.info_keys = check_info_keys(info_keys)
        self.config = dict(config or {})
        env_kwargs = policy_env_kwargs(env, self.config.get("env_kwargs", {}))
        self.env = make(env, seed=seed, **env_kwargs)
        self.proposer: RewardProposer
        if proposer is None:
            self.proposer = FactorProposer(self.env, seed=seed)
        elif hasattr(proposer, "complete"):
            self.proposer = LLMProposer(proposer, task, self.env, temperature=temperature, info_keys=self.info_keys)
        else:
            self.proposer = proposer
        self.ranker: CandidateRanker = ranker or ScriptedRanker()
        self.iterations, self.candidates, self.train_steps = iterations, candidates, train_steps
        self.n_jobs, self.max_rounds = n_jobs, max_rounds
        self.executor = executor
        self.out_dir = Path(out_dir)
        self.history: list[dict[str, Any]] = []
        self._probe = None

    def run(self) -> dict[str, Any]:
        """Run every iteration; returns (and writes to ``summary.json``) the best candidate per iteration."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        previous_good = None
        best_overall: Candidate | None = None
        for iteration in tqdm(range(self.iterations), desc=f"ICPL on {self.spec}", unit="iteration"):
            candidates = self._generate_and_train(iteration)
            best, worst, note = self.ranker.rank(candidates)
            good, bad = candidates[best], candidates[worst]
            if best_overall is None or self._better(good, best_overall):
                best_overall = good
            self.history.append(
                {
                    "iteration": iteration,
                    "best": good.name,
                    "worst": bad.name,
                    "note": note,
                    "best_success_rate": good.success_rate,
                    "best_env_return": good.mean_env_return,
                    "candidates": [
                        {"name": c.name, "success_rate": c.success_rate, "mean_env_return": c.mean_env_return}
                        for c in candidates
                    ],
                    "rankings": iteration + 1,
                    "pairwise_preferences": (iteration + 1) * (len(candidates) - 1),
                }
            )
            self.proposer.learn(good, bad, note, previous_good)
            previous_good = good
            self._write_summary(best_overall)
        return json.loads((self.out_dir / "summary.json").read_text())

    @staticmethod
    def _better(a: Candidate, b: Candidate) -> bool:
        return ((a.success_rate or 0.0), a.mean_env_return) > ((b.success_rate or 0.0), b.mean_env_return)

    def _write_summary(self, best: Candidate) -> None:
        summary = {
            "env": self.spec,
            "task": self.task,
            "proposer": self.proposer.name,
            "ranker": self.ranker.name,
            "candidates": self.candidates,
            "train_steps": self.train_steps,
            "seed": self.seed,
            "iterations": self.history,
            "best": {
                "name": best.name,
                "success_rate": best.success_rate,
                "mean_env_return": best.mean_env_return,
                "code": best.code,
            },
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))

    def _generate_and_train(self, iteration: int) -> list[Candidate]:
        ok: list[Candidate] = []
        index = 0
        for round_ in range(self.max_rounds):
            need = self.candidates - len(ok)
            if need == 0:
                break
            proposals = self.proposer.propose(need, seed=self.seed + 1000 * iteration + round_)
            fresh = []
            for code, response in proposals:
                candidate = Candidate(iteration, index, code, response)
                candidate.out_dir = str(self.out_dir / f"iter{iteration}" / f"cand{index}")
                index += 1
                candidate.error = self._smoke_test(code)
                self._save(candidate)
                fresh.append(candidate)
            trainable = [c for c in fresh if c.ok]
            for candidate, result in zip(trainable, self._train(trainable), strict=True):
                for key, value in result.items():
                    setattr(candidate, key, value)
                self._save(candidate)
            ok += [c for c in trainable if c.ok]
        if len(ok) < 2:
            raise RuntimeError(
                f"iteration {iteration}: only {len(ok)} of {self.candidates} candidates ran after "
                f"{self.max_rounds} rounds of generation; see {self.out_dir / f'iter{iteration}'}"
            )
        return ok[: self.candidates]

    def _smoke_test(self, code: str) -> str | None:
        if self._probe is None:  # a few real transitions, the same for every candidate
            self._probe = probe_transitions(self.env, self.seed)
        return smoke_test(code, self._probe, self.info_keys)

    def _train(self, candidates: list[Candidate]) -> list[dict[str, Any]]:
        config = {"video_episodes": 1, **self.config}
        jobs = [
            (self.spec, c.code, self.train_steps, self.seed, c.out_dir, config, False, False, self.info_keys)
            for c in candidates
        ]
        if self.executor is not None:
            return self.executor.map(_train_job, jobs)
        with LocalExecutor(min(self.n_jobs, len(jobs))) as executor:
            return executor.map(_train_job, jobs)

    def _save(self, candidate: Candidate) -> None:
        folder = Path(candidate.out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "code.py").write_text(candidate.code)
        (folder / "response.txt").write_text(candidate.response)
        if isinstance(self.proposer, LLMProposer):
            (folder / "prompt.json").write_text(json.dumps(self.proposer.messages(), indent=2))
        (folder / "score.json").write_text(json.dumps(asdict(candidate), indent=2))
