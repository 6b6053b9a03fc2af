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
The loop trains policies, so it reaches into ``robofeedback.rl`` (lazily): it is an outer loop around
training, like the benchmarks.
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

from robofeedback.envs import policy_env_kwargs
from robofeedback.parallel import LocalExecutor
from robofeedback.rewards.code import FUNCTION, INFO_KEYS, CodeReward, RewardCodeError, check_info_keys, extract_code

SYSTEM_PROMPT = """You are a reward engineer. You write reward functions in Python for reinforcement learning \
agents so that they learn the task described to you as quickly and reliably as possible.

Write one function, with exactly this signature:

    def compute_reward(obs, action, info):
        ...
        return reward, components

- obs is the observation after the action, a 1-D numpy array (the layout is described below); action is
  a 1-D numpy array; info is a dict with only the keys described below.
- reward is a float; components is a dict from short names (letters, digits, _) to the float terms the
  reward is made of.
- You may import only math and numpy (as np). No file, network or system access; plain helper functions
  and classes are fine.
- Answer with the function in one ```python code block."""

FEEDBACK_TIPS = """Analyse the traces first: a component whose values barely change teaches the agent nothing \
(rescale it or replace it); a component that dominates the others hides them (scale it down or transform \
it, e.g. with np.exp(-x / temperature)). Then write an improved reward function, in one ```python block."""


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


INFO_DESCRIPTIONS = {
    "agent_pos": "3-D position of the end effector or body, a numpy array",
    "factors": "a dict of the env's named reward factors, below",
}


def describe_env(env, info_keys: Sequence[str] = INFO_KEYS) -> str:
    """What the proposer is told about ``env``: observation layout, action space, the ``info`` keys the reward
    code can read (``info_keys``, the same the sandbox passes) and the env's named reward factors."""
    lines = [f"Environment: {env.spec_name}."]
    layout = env.observation_layout() if hasattr(env, "observation_layout") else None
    lines.append(f"obs: {env.observation_space.shape[0]} numbers.")
    lines += [f"  obs[{start}:{end}]: {text}" for (start, end), text in (layout or [])]
    lines.append(
        f"action: {env.action_space.shape[0]} numbers in [{env.action_space.low.min():g}, "
        f"{env.action_space.high.max():g}]."
    )
    keys = [f"{key} ({INFO_DESCRIPTIONS.get(key, 'provided by the env')})" for key in info_keys]
    lines.append(
        f"info keys: {', '.join(keys)}. Nothing else: not the env's own reward, not whether the task succeeded."
    )
    if "factors" in info_keys:
        for name, factor in env.factor_info.items():
            kind = "a reward term" if factor.sign > 0 else "a cost term"
            lines.append(f'  info["factors"]["{name}"]: {factor.description} ({kind})')
    return "\n".join(lines)


def trace_text(candidate: Candidate) -> str:
    """A candidate's reward-component trace for the prompt: about 10 values over training, then max/mean/min."""
    if not candidate.trace:
        return "(no trace)"
    lines = []
    for name, values in candidate.trace.items():
        shown = ", ".join(f"{v:.3g}" for v in values)
        lines.append(f"{name}: [{shown}], max {max(values):.3g}, mean {np.mean(values):.3g}, min {min(values):.3g}")
    return "\n".join(lines)


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
                f"The policy trained on {previous_good.name} gave these reward traces:\n{trace_text(previous_good)}"
            )
        parts = []
        if self.history:
            parts.append(
                f"We have iterated {len(self.history) + 1} rounds. How the preferred reward function "
                "changed from round to round, and the traces it gave:\n\n" + "\n\n".join(self.history)
            )
        parts += [
            f"The preferred reward function ({good.name}):\n```python\n{good.code}```\n"
            f"Its components over training (about 10 points):\n{trace_text(good)}",
            f"The rejected reward function ({bad.name}):\n```python\n{bad.code}```\n"
            f"Its components over training:\n{trace_text(bad)}",
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


def factor_code(weights: dict[str, float]) -> str:
    """Reward code that sums ``weights[name] * info["factors"][name]``."""
    lines = [
        "# generated by the offline factor-weight proposer (not an LLM)",
        f"def {FUNCTION}(obs, action, info):",
        '    factors = info["factors"]',
        "    components = {",
    ]
    lines += [f'        "{name}": {w!r} * factors["{name}"],' for name, w in weights.items()]
    lines += ["    }", "    return sum(components.values()), components", ""]
    return "\n".join(lines)


def parse_weights(code: str) -> dict[str, float]:
    """The weights of :func:`factor_code`'s output."""
    weights = {}
    for line in code.splitlines():
        line = line.strip()
        if line.startswith('"') and '* factors["' in line:
            name, rest = line.split('": ', 1)
            weights[name.strip('"')] = float(rest.split(" * ")[0])
    return weights


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
        from robofeedback.data.store import FeedbackStore

        self.store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        self.run, self.wait_seconds, self.poll_seconds = run, wait_seconds, poll_seconds

    def rank(self, candidates: Sequence[Candidate]) -> tuple[int, int, str]:
        from robofeedback.data.trajectory import Trajectory

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


def component_trace(infos_by_episode: list[dict[str, float]], points: int = 10) -> dict[str, list[float]]:
    """Per-episode sums of each reward component, averaged over ``points`` equal stretches of training."""
    if not infos_by_episode:
        return {}
    chunks = np.array_split(np.arange(len(infos_by_episode)), min(points, len(infos_by_episode)))
    names = list(dict.fromkeys(k for episode in infos_by_episode for k in episode))
    return {
        name: [float(np.mean([infos_by_episode[i].get(name, 0.0) for i in chunk])) for chunk in chunks]
        for name in names
    }


def train_candidate(
    spec: str,
    code: str,
    steps: int,
    seed: int,
    out_dir: str,
    config: dict,
    resume: bool = False,
    frames: bool = False,
    info_keys: Sequence[str] = INFO_KEYS,
) -> dict[str, Any]:
    """Train a policy on ``code``'s reward (reading ``info_keys`` of the env's info) and report the final
    evaluation, the component trace and the video; a reward-code failure during training is returned as the
    candidate's error. One episode of the final policy is saved as ``final_episode.npz`` (with its rendered frames
    when ``frames``); ``resume`` continues a checkpoint in ``out_dir``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from robofeedback.data.rollout import collect
    from robofeedback.envs import make
    from robofeedback.rl.train import train

    class Trace(BaseCallback):
        def __init__(self):
            super().__init__()
            self.episodes: list[dict[str, float]] = []
            self.running: dict[int, dict[str, float]] = {}

        def _on_step(self) -> bool:
            for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
                sums = self.running.setdefault(i, {})
                for name, value in info.get("factors", {}).items():
                    if name.startswith("reward/"):
                        component = name.removeprefix("reward/")
                        sums[component] = sums.get(component, 0.0) + value
                if done:
                    self.episodes.append(self.running.pop(i))
            return True

    reward = CodeReward(code, info_keys=info_keys)
    tracer = Trace()
    try:
        result = train(
            spec,
            reward=reward,
            total_steps=steps,
            seed=seed,
            out_dir=out_dir,
            config=config,
            resume=resume,
            progress=False,
            callbacks=[tracer],
        )
    except RewardCodeError as e:
        return {"error": str(e)}
    finally:
        reward.close()
    env_kwargs = json.loads((Path(out_dir) / "summary.json").read_text())["env_kwargs"]  # as train made the env
    env = make(spec, seed=seed + 30_000, **env_kwargs)
    episode = collect(env, result.model, n_episodes=1, render=frames, seed=seed + 30_000)[0]
    episode.save(Path(out_dir) / "final_episode.npz")
    return {
        "success_rate": result.final_eval.get("success_rate"),
        "mean_env_return": result.final_eval["mean_env_return"],
        "trace": component_trace(tracer.episodes),
        "video": str(result.video) if result.video else None,
    }


def probe_transitions(env, seed: int):
    """Five real transitions of random actions in ``env``, to try reward code on before training with it."""
    from robofeedback.data.rollout import collect

    return collect(env, None, n_steps=5, seed=seed)[0]


def smoke_test(code: str, probe, info_keys: Sequence[str] = INFO_KEYS) -> str | None:
    """Why ``code`` cannot be trained on (refused by the sandbox, or failing on the ``probe`` transitions), or None
    when it runs."""
    if not code:
        return "the answer held no reward function"
    try:
        reward = CodeReward(code, info_keys=info_keys)
        try:
            reward.compute(probe.obs[1:], probe.actions, probe.infos)
        finally:
            reward.close()
    except RewardCodeError as e:
        return str(e)
    return None


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
        proposer=None,
        ranker=None,
        iterations: int = 5,
        candidates: int = 6,
        train_steps: int = 5000,
        config: dict | None = None,
        n_jobs: int = 1,
        executor=None,
        out_dir: str | Path = "runs/icpl",
        seed: int = 0,
        max_rounds: int = 5,
        temperature: float = 1.0,
        info_keys: Sequence[str] = INFO_KEYS,
    ):
        from robofeedback.envs import make

        if candidates < 2:
            raise ValueError(f"candidates must be >= 2 (a best and a worst), got {candidates}")
        if min(iterations, train_steps, n_jobs, max_rounds) < 1:
            raise ValueError("iterations, train_steps, n_jobs and max_rounds must be >= 1")
        self.spec, self.task, self.seed = env, task, seed
        self.info_keys = check_info_keys(info_keys)
        self.config = dict(config or {})
        env_kwargs = policy_env_kwargs(env, self.config.get("env_kwargs", {}))
        self.env = make(env, seed=seed, **env_kwargs)
        if proposer is None:
            self.proposer = FactorProposer(self.env, seed=seed)
        elif hasattr(proposer, "complete"):
            self.proposer = LLMProposer(proposer, task, self.env, temperature=temperature, info_keys=self.info_keys)
        else:
            self.proposer = proposer
        self.ranker = ranker or ScriptedRanker()
        self.iterations, self.candidates, self.train_steps = iterations, candidates, train_steps
        self.n_jobs, self.max_rounds = n_jobs, max_rounds
        self.executor = executor
        self.out_dir = Path(out_dir)
        self.history: list[dict[str, Any]] = []
        self._probe = None

    def run(self) -> dict[str, Any]:
        """Run every iteration; returns (and writes to ``summary.json``) the best candidate per iteration."""
        from tqdm.auto import tqdm

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
