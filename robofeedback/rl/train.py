"""Training stable-baselines3 policies on an env's own reward or any reward function.

``train(env, reward, algo, total_steps, ...)`` builds the vectorized env (each
sub-env a robofeedback env in an SB3 ``Monitor``, so ``rollout/ep_rew_mean``
is the env's own return), puts a :class:`VecRewardWrapper` on top when the
reward is not the env's, trains with TensorBoard logs and a progress bar,
evaluates on ``info["env_reward"]`` / ``info["success"]`` every
``eval_every`` steps, checkpoints so that a later call resumes, and at the end
writes ``eval.mp4``, ``learning_curve.png`` and ``summary.json`` to ``out_dir``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from robofeedback import registry
from robofeedback.config import config_dir, deep_merge, load_yaml, require_positive_ints, run_metadata
from robofeedback.data.rollout import collect
from robofeedback.data.store import FeedbackStore
from robofeedback.data.video import write_video
from robofeedback.envs import RobotEnv, clone, get_family, make, policy_env_kwargs
from robofeedback.envs.tasks import task_prompts
from robofeedback.protocols import FeedbackSource, LearnedReward, RewardFunction
from robofeedback.rewards.base import EnvReward, make_reward
from robofeedback.rl.feedback_loop import CURVE_POINTS, FeedbackLoop
from robofeedback.rl.plots import plot_learning_curve
from robofeedback.rl.wandb_logging import wandb_logging
from robofeedback.rl.wrappers import VecRewardWrapper
from robofeedback.seeding import stream_seed

ALGOS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "ppo": PPO}
TB_LOG_NAME = "run"  # TensorBoard logs go to out/tb/run_0 (learn continues the one folder: reset_num_timesteps=False)
# The feedback loop's settings a config's ``feedback:`` section may give (FeedbackLoop's keyword parameters).
FEEDBACK_KEYS = set(inspect.signature(FeedbackLoop.__init__).parameters) - {"self", "reward_model", "source", "store"}
GENERAL_KEYS = (
    "n_envs",
    "vec_env",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "video_episodes",
    "torch_threads",
    "device",
    "her",
    "env_kwargs",
    "preference",
    "feedback",
)


@dataclass
class TrainConfig:
    """Everything ``train`` needs besides the env and reward; defaults come from ``configs/train/<family>.yaml``."""

    algo: str
    total_steps: int
    n_envs: int = 1
    vec_env: str = "dummy"
    eval_every: int = 5000
    eval_episodes: int = 10
    checkpoint_every: int = 10000
    video_episodes: int = 1
    torch_threads: int = 1
    device: str = "cpu"
    her: dict | None = None
    env_kwargs: dict = field(default_factory=dict)
    algo_kwargs: dict = field(default_factory=dict)
    preference: dict = field(default_factory=dict)  # the learned reward model's settings
    feedback: dict = field(default_factory=dict)  # FeedbackLoop settings, for a learned reward

    def __post_init__(self) -> None:
        unknown = set(self.feedback) - FEEDBACK_KEYS
        if unknown:
            raise ValueError(
                f"unknown feedback: keys {sorted(unknown)}; the feedback loop takes {sorted(FEEDBACK_KEYS)}"
            )
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {self.algo!r}")
        names = ("total_steps", "n_envs", "eval_every", "eval_episodes", "checkpoint_every", "torch_threads")
        require_positive_ints(**{name: getattr(self, name) for name in names})
        if self.video_episodes < 0:
            raise ValueError(f"video_episodes must be >= 0, got {self.video_episodes}")
        if self.vec_env not in ("dummy", "subproc"):
            raise ValueError(f"vec_env must be 'dummy' or 'subproc', got {self.vec_env!r}")


def family_of(spec: str) -> str:
    """The config family of an env spec: its ``family:`` prefix, or ``gym`` for plain Gymnasium ids."""
    prefix, sep, _ = spec.partition(":")
    return prefix if sep and get_family(prefix) is not None else "gym"


def load_train_config(
    family: str,
    algo: str,
    total_steps: int,
    overrides: dict[str, Any] | str | Path | None = None,
    method: str | None = None,
) -> TrainConfig:
    """The family's YAML defaults with ``overrides`` (a dict or a YAML file) merged over them.

    Overrides may set any general key (``n_envs``, ``eval_every``, ...,
    ``env_kwargs``) and, under the algorithm's name (``sac:``, ``td3:``,
    ``ppo:``), any keyword of the SB3 constructor. The family's ``methods:`` section holds defaults for one reward
    method (``methods: {preference: {...}}``): with ``method``, that method's entry is merged between the family's
    defaults and ``overrides``.
    """
    algo = algo.lower()
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    merged = load_yaml(config_dir() / "train" / f"{family}.yaml")
    per_method = merged.pop("methods", None) or {}
    merged = deep_merge(merged, per_method.get(method) or {})
    if isinstance(overrides, (str, Path)):
        overrides = load_yaml(overrides)
    merged = deep_merge(merged, overrides or {})
    unknown = set(merged) - set(GENERAL_KEYS) - set(ALGOS)
    if unknown:
        raise ValueError(
            f"unknown config keys {sorted(unknown)}; general keys are {list(GENERAL_KEYS)}, "
            f"algorithm settings go under {sorted(ALGOS)}"
        )
    general = {k: merged[k] for k in GENERAL_KEYS if k in merged}
    return TrainConfig(algo=algo, total_steps=total_steps, algo_kwargs=dict(merged.get(algo) or {}), **general)


def _make_monitored(spec: str, seed: int, env_kwargs: dict) -> gym.Env:
    return Monitor(make(spec, seed=seed, **env_kwargs))


def make_vec_env(spec: str, n_envs: int, seed: int, env_kwargs: dict | None = None, vec_env: str = "dummy") -> VecEnv:
    """``n_envs`` robofeedback envs (seeded by the run's ``envs`` streams) in SB3 ``Monitor``s, vectorized."""
    seeds = [stream_seed(seed, "envs", i) for i in range(n_envs)]
    fns = [functools.partial(_make_monitored, spec, s, dict(env_kwargs or {})) for s in seeds]
    if vec_env == "subproc" and n_envs > 1:
        return SubprocVecEnv(fns, start_method="spawn")
    return DummyVecEnv(fns)


def _is_goal_space(space: gym.Space) -> bool:
    return isinstance(space, spaces.Dict) and {"achieved_goal", "desired_goal"} <= set(space.spaces)


def evaluate(model: Any, env: gym.Env, n_episodes: int, seed: int | None = None) -> dict[str, float]:
    """Mean env return, mean length and success rate (an episode succeeds if any step reports success) of
    ``n_episodes`` deterministic episodes; the same ``seed`` gives the same episodes."""
    trajectories = collect(env, model, n_episodes=n_episodes, deterministic=True, seed=seed)
    result = {
        "mean_env_return": float(np.mean([t.env_return for t in trajectories])),
        "std_env_return": float(np.std([t.env_return for t in trajectories])),
        "mean_length": float(np.mean([len(t) for t in trajectories])),
    }
    successes = [t.success for t in trajectories]
    if all(s is not None for s in successes):
        result["success_rate"] = float(np.mean([bool(s.any()) for s in successes]))
    return result


def _append_eval(
    path: Path, steps: int, result: dict[str, float], start_time: float, labels: Callable[[], int] | None = None
) -> dict[str, Any]:
    row = {"steps": int(steps), "wall_time_s": round(time.time() - start_time, 2), **result}
    if labels is not None:
        row["labels"] = int(labels())
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def _read_eval_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class PeriodicCallback(BaseCallback):
    """Calls ``on_period()`` each time the env step count passes a multiple of ``every`` (resumed runs included)."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every
        self._next = every

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.on_period()
        return True

    def on_period(self) -> None:
        raise NotImplementedError


def progress_line(row: dict[str, Any], total_steps: int) -> str:
    """One evaluation as a line a person reads: steps, labels, success, env return and time so far."""
    parts = [f"steps {row['steps']}/{total_steps}"]
    if "labels" in row:
        parts.append(f"labels {row['labels']}")
    if row.get("success_rate") is not None:
        parts.append(f"success {row['success_rate']:.2f}")
    parts += [f"env return {row['mean_env_return']:.2f}", f"{row['wall_time_s']:.0f} s"]
    return " | ".join(parts)


class EvalCallback(PeriodicCallback):
    """Evaluates the policy every ``every`` env steps on the env's own reward and success; logs to TensorBoard
    (``eval/*``), appends a JSON line per evaluation to ``log_path``, with the labels used so far when
    ``labels`` (a count) is given, and a line a person reads (:func:`progress_line`) to ``progress.log`` beside
    it, also printed with ``echo``."""

    def __init__(
        self,
        env: gym.Env,
        every: int,
        n_episodes: int,
        seed: int,
        log_path: Path,
        start_time: float,
        status: RunStatus | None = None,
        labels: Callable[[], int] | None = None,
        total_steps: int = 0,
        echo: bool = False,
    ):
        super().__init__(every)
        self.env, self.n_episodes, self.seed = env, n_episodes, seed
        self.log_path = log_path
        self.start_time = start_time
        self.status = status
        self.labels = labels
        self.total_steps, self.echo = total_steps, echo

    def on_period(self) -> None:
        result = evaluate(self.model, self.env, self.n_episodes, seed=self.seed)
        for key, value in result.items():
            self.logger.record(f"eval/{key}", value)
        self.logger.dump(self.num_timesteps)
        row = _append_eval(self.log_path, self.num_timesteps, result, self.start_time, self.labels)
        line = progress_line(row, self.total_steps)
        with open(self.log_path.parent / "progress.log", "a") as f:
            f.write(line + "\n")
        if self.echo:
            print(line, flush=True)
        if self.status is not None:
            self.status.evaluated(self.model, self.num_timesteps, result, row.get("labels"))


def video_fps(env: gym.Env) -> int:
    """The frame rate videos of ``env`` are written at: its own, at most 30."""
    return min(env.metadata.get("render_fps") or 25, 30)


class RunStatus:
    """Keeps a feedback run's status in the store for the annotation app: the env and task, steps, the latest
    evaluation, the curve of evaluations (``curve``: [steps, success rate or None, env return, labels] each, the
    latest ``CURVE_POINTS``) and, when ``video`` (people are watching), one episode of the current policy
    (``out/eval_latest.mp4``)."""

    def __init__(self, store: FeedbackStore, run: str, env: gym.Env, out: Path, seed: int, video: bool = True):
        self.store, self.run, self.env, self.out, self.seed, self.video = store, run, env, out, seed, video
        self.curve: list[list] = []

    def started(self, spec: str, total_steps: int, steps: int, task: str | None) -> None:
        earlier = self.store.run_statuses().get(self.run, {}).get("curve") or []
        self.curve = [point for point in earlier if point[0] <= steps]  # a resumed run keeps its curve
        self.store.set_run_status(
            self.run,
            env=spec,
            task=task,
            total_steps=int(total_steps),
            steps=int(steps),
            state="training",
            curve=self.curve,
        )

    def evaluated(self, model: Any, steps: int, result: dict[str, float], labels: int | None = None) -> None:
        point = [int(steps), result.get("success_rate"), round(result["mean_env_return"], 4), labels]
        self.curve = (self.curve + [point])[-CURVE_POINTS:]
        fields: dict[str, Any] = {"steps": int(steps), "eval": result, "eval_steps": int(steps), "curve": self.curve}
        if self.video:
            (episode,) = collect(self.env, model, n_episodes=1, deterministic=True, render=True, seed=self.seed)
            tmp = self.out / "eval_latest.tmp.mp4"
            write_video(episode.frames, tmp, fps=video_fps(self.env))
            video = self.out / "eval_latest.mp4"
            os.replace(tmp, video)
            fields["eval_video"] = str(video.resolve())
        self.store.set_run_status(self.run, **fields)

    def finished(self, steps: int, result: dict[str, float]) -> None:
        self.store.set_run_status(self.run, steps=int(steps), eval=result, eval_steps=int(steps), state="finished")


class CheckpointCallback(PeriodicCallback):
    """Saves the model, its replay buffer and the step count every ``every`` env steps, atomically, so that a
    killed run resumes from the last checkpoint."""

    def __init__(self, directory: Path, every: int, state: dict, start_time: float):
        super().__init__(every)
        self.directory, self.state = directory, state
        self.start_time = start_time

    def on_period(self) -> None:
        save_checkpoint(self.model, self.directory, self.state, self.start_time)


class ModelReturnLogger(BaseCallback):
    """Logs the mean episode return under the training reward function (``rollout/ep_model_rew_mean``)."""

    def __init__(self, window: int = 100):
        super().__init__()
        self.returns: list[float] = []
        self.window = window

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode_model_return" in info:
                self.returns = (self.returns + [info["episode_model_return"]])[-self.window :]
        if self.returns:
            self.logger.record("rollout/ep_model_rew_mean", float(np.mean(self.returns)))
        return True


def save_checkpoint(model: BaseAlgorithm, directory: Path, state: dict, start_time: float) -> None:
    """Write model, replay buffer and ``state`` (plus step count and elapsed time), each file replaced atomically."""
    state = {**state, "num_timesteps": int(model.num_timesteps), "wall_time_s": round(time.time() - start_time, 2)}
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "model.tmp.zip"
    model.save(tmp)
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(directory / "replay_buffer.tmp.pkl")
        os.replace(directory / "replay_buffer.tmp.pkl", directory / "replay_buffer.pkl")
    os.replace(tmp, directory / "model.zip")
    (directory / "state.tmp.json").write_text(json.dumps(state, indent=2))
    os.replace(directory / "state.tmp.json", directory / "state.json")


@dataclass
class TrainResult:
    """What a training run produced: the model, final evaluation and the files written."""

    model: BaseAlgorithm
    out_dir: Path
    final_eval: dict[str, float]
    steps: int
    wall_time_s: float
    video: Path | None
    learning_curve: Path | None
    checkpoint: Path
    config: TrainConfig
    feedback: dict | None = None  # labels used and reward-model accuracy, when the reward was learned
    reward: RewardFunction | None = None  # the reward the policy was trained on (learned: as it ended)


def _training_envs(
    env: str | gym.Env | Callable[[], gym.Env], cfg: TrainConfig, seed: int, train_kwargs: dict, eval_kwargs: dict
) -> tuple[str, VecEnv, gym.Env]:
    """The spec name, the vectorized training envs and a separate evaluation env for ``env`` (made with
    ``train_kwargs`` and ``eval_kwargs`` when ``env`` is a spec)."""
    if isinstance(env, str):
        return (
            env,
            make_vec_env(env, cfg.n_envs, seed, train_kwargs, cfg.vec_env),
            make(env, seed=stream_seed(seed, "eval"), **eval_kwargs),
        )
    if isinstance(env, gym.Env):
        if cfg.n_envs != 1:
            raise ValueError("a single env instance trains with n_envs=1; pass a spec or a factory for more")
        if isinstance(env, RobotEnv):
            eval_env = clone(env, seed=stream_seed(seed, "eval"))
        elif env.spec is not None:
            eval_env = gym.make(env.spec)
        else:
            raise ValueError("cannot make an evaluation copy of an env without a spec; pass a zero-argument factory")
        spec = getattr(env, "spec_name", None) or env.spec.id
        return spec, DummyVecEnv([lambda: Monitor(env)]), eval_env
    if callable(env):
        eval_env = env()
        spec = getattr(eval_env, "spec_name", None) or (eval_env.spec.id if eval_env.spec else type(eval_env).__name__)
        return spec, DummyVecEnv([lambda: Monitor(env()) for _ in range(cfg.n_envs)]), eval_env
    raise TypeError(f"env must be a spec string, a gymnasium.Env or a zero-argument factory, got {type(env).__name__}")


def train(
    env: str | gym.Env | Callable[[], gym.Env],
    reward: str | RewardFunction | Callable | None = "env",
    algo: str = "sac",
    total_steps: int = 20_000,
    n_envs: int | None = None,
    seed: int = 0,
    out_dir: str | Path = "runs/train",
    config: dict[str, Any] | str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    callbacks: list[BaseCallback] | None = None,
    feedback: FeedbackSource | None = None,
    store: FeedbackStore | str | Path | None = None,
    task: str | None = None,
    echo: bool = False,
    method_defaults: bool = True,
    wandb: str | dict | None = None,
) -> TrainResult:
    """Train an SB3 policy on ``env`` with ``reward`` (``"env"`` for the env's own) and evaluate it on the env's own.

    ``env`` is a spec for :func:`robofeedback.envs.make` (each sub-env and the
    evaluation env are made from it), a zero-argument factory (called once per
    sub-env and once for evaluation), or one env instance (then ``n_envs`` must
    be 1 and evaluation uses a clone of it). ``config`` overrides the family defaults
    (see :func:`load_train_config`), and the family's defaults for the ``reward`` method under them unless
    ``method_defaults`` is False (a baseline that must run a method as published). With ``resume`` a checkpoint in
    ``out_dir`` is continued up to ``total_steps``.

    ``reward`` is ``"env"``, a reward function or a plain callable, or the name of a method in
    :mod:`robofeedback.registry` that builds one for the env (``robofeedback.registry.names("train")``). A
    :class:`~robofeedback.protocols.LearnedReward` (built by its method, or given) is learned from ``feedback`` (a
    teacher, a judge or the human queue) by a :class:`FeedbackLoop`; labels go to ``store`` (default
    ``out_dir/feedback.db``), and the config's ``preference:`` and ``feedback:`` sections set the reward model and
    the loop. A run that learns from feedback keeps its status (steps, latest evaluation, with a video when the
    source is people, and ``task``, the task in words, shown to people in the annotation app) in the store. Each
    evaluation is a line in ``out_dir/progress.log``, printed too with ``echo`` (for a terminal or a file that a
    progress bar does not reach).

    Training logs to TensorBoard (``out_dir/tb``) and, with ``wandb`` (a project name, or keywords of ``wandb.init``
    such as ``{"project": ..., "entity": ..., "mode": "offline"}``), to a Weights & Biases run too: the same scalars,
    with what ran, the resolved config and the commit as its config (see :mod:`robofeedback.rl.wandb_logging`).
    """
    start = time.time()
    out = Path(out_dir)
    method = _method(reward, feedback)
    cfg = _resolve_config(env, algo, total_steps, config, n_envs, method, method_defaults)
    torch.set_num_threads(cfg.torch_threads)
    reward_fn = None if method is not None else _given_reward(reward, feedback)
    use_her = cfg.algo in ("sac", "td3") and cfg.her is not None and isinstance(reward_fn, EnvReward)
    env_kwargs = policy_env_kwargs(env, cfg.env_kwargs, use_her)
    spec, venv, eval_env = _training_envs(env, cfg, seed, _render_kwargs(env_kwargs, reward_fn), env_kwargs)
    use_her = use_her and _is_goal_space(venv.observation_space)
    out.mkdir(parents=True, exist_ok=True)
    if method is not None:
        reward_fn = method.reward_for(eval_env, cfg, seed)
    name = method.name if method is not None else type(reward_fn).__name__
    state = {"env": spec, "algo": cfg.algo, "seed": seed, "reward": name, "env_kwargs": env_kwargs}
    loop = None
    if isinstance(reward_fn, LearnedReward):
        reward_fn, loop = _feedback_loop(reward_fn, feedback, eval_env, store, out, cfg, seed, state, resume)
    if not isinstance(reward_fn, EnvReward):
        venv = VecRewardWrapper(venv, reward_fn)
    model, start = _new_or_resumed_model(out, state, venv, cfg, seed, use_her, resume, start)
    status = _run_status(loop, eval_env, out, seed, spec, cfg, model, task)
    labels = (lambda: loop.labels_used) if loop is not None else None
    eval_log, ckpt_dir = out / "eval.jsonl", out / "checkpoints"
    eval_cb = EvalCallback(
        eval_env,
        cfg.eval_every,
        cfg.eval_episodes,
        stream_seed(seed, "eval"),
        eval_log,
        start,
        status,
        labels,
        cfg.total_steps,
        echo,
    )
    cbs: list[BaseCallback] = [eval_cb, CheckpointCallback(ckpt_dir, cfg.checkpoint_every, state, start)]
    cbs = ([loop] if loop is not None else []) + cbs
    if not isinstance(reward_fn, EnvReward):
        cbs.append(ModelReturnLogger())
    remaining = cfg.total_steps - model.num_timesteps
    if remaining > 0:
        cbs = CallbackList(cbs + list(callbacks or []))
        run_config = {**state, "config": asdict(cfg), "code": run_metadata()}
        with wandb_logging(wandb, model, out, run_config, state, TB_LOG_NAME):
            model.learn(
                remaining, callback=cbs, reset_num_timesteps=False, tb_log_name=TB_LOG_NAME, progress_bar=progress
            )
    save_checkpoint(model, ckpt_dir, state, start)
    final = _final_evaluation(model, eval_env, eval_log, cfg, seed, start, labels)
    if status is not None:
        status.finished(model.num_timesteps, final)
    video = _eval_video(model, eval_env, out, cfg, seed)
    curve = plot_learning_curve(eval_log, out / "learning_curve.png", title=f"{cfg.algo.upper()} on {spec}")
    wall = time.time() - start
    summary = _write_summary(out, state, model, final, wall, video, curve, cfg, loop)
    if loop is not None:  # the learned reward as a folder to share: weights, settings, a model card
        feedback = summary["feedback"]
        card = {"env": spec, "labels": feedback["labels"], "sources": {feedback["source"]: feedback["labels"]}}
        reward_fn.save_pretrained(out / "reward_model", {**card, "heldout_accuracy": feedback.get("heldout_accuracy")})
    venv.close()
    eval_env.close()
    return TrainResult(
        model,
        out,
        final,
        int(model.num_timesteps),
        wall,
        video,
        curve,
        out / "checkpoints",
        cfg,
        summary.get("feedback"),
        reward_fn,
    )


def _given_reward(reward: Any, feedback: FeedbackSource | None) -> RewardFunction:
    """The reward function ``reward`` gives (``"env"``, a function, a callable), checked against ``feedback``."""
    reward_fn = make_reward(reward)
    if feedback is not None and not isinstance(reward_fn, LearnedReward):
        raise ValueError(f"feedback= is given but the reward ({type(reward_fn).__name__}) does not learn from it")
    if isinstance(reward_fn, LearnedReward) and feedback is None:
        raise ValueError(f"{type(reward_fn).__name__} is learned: give feedback= (a teacher, a judge or a HumanQueue)")
    return reward_fn


def _render_kwargs(env_kwargs: dict, reward_fn: RewardFunction | None) -> dict:
    """The training envs' kwargs: a reward that looks at frames has them rendered at its model's input size."""
    kwargs = dict(env_kwargs)
    if reward_fn is not None and reward_fn.needs_frames and getattr(reward_fn, "image_size", None):
        kwargs.setdefault("render_size", reward_fn.image_size)
    return kwargs


def _new_or_resumed_model(
    out: Path, state: dict, venv: VecEnv, cfg: TrainConfig, seed: int, use_her: bool, resume: bool, start: float
) -> tuple[BaseAlgorithm, float]:
    """The checkpointed model in ``out`` when resuming (its evaluations after the checkpoint dropped, its wall time
    carried on), else a new one (and a fresh evaluation log); returns it with the run's start time."""
    loaded = _load_checkpoint(out / "checkpoints", state, venv, cfg) if resume else None
    if loaded is None:
        (out / "eval.jsonl").unlink(missing_ok=True)
        (out / "progress.log").unlink(missing_ok=True)
        return _new_model(cfg, venv, seed, out, use_her), start
    model, saved_state = loaded
    if "wandb_run" in saved_state:  # a resumed run logs on to the same W&B run
        state["wandb_run"] = saved_state["wandb_run"]
    _truncate_eval_log(out / "eval.jsonl", model.num_timesteps)
    return model, start - saved_state.get("wall_time_s", 0.0)


def _run_status(
    loop: FeedbackLoop | None, eval_env: gym.Env, out: Path, seed: int, spec: str, cfg: TrainConfig, model, task
) -> RunStatus | None:
    """For a run that learns from feedback, its status in the store (the app shows it). Scripted sources answer at
    once and nobody watches: only runs that wait for people render the video."""
    if loop is None:
        return None
    status = RunStatus(
        loop.store, loop.run, eval_env, out, stream_seed(seed, "status"), video=not loop.source.immediate
    )
    status.started(spec, cfg.total_steps, model.num_timesteps, task or task_prompts(spec).get("task"))
    return status


def _write_summary(out: Path, state: dict, model, final, wall: float, video, curve, cfg, loop) -> dict[str, Any]:
    """``out/summary.json``: what ran (the checkpoint's state, the config, the code) and what it gave."""
    summary = {
        **state,
        "steps": int(model.num_timesteps),
        "final_eval": final,
        "wall_time_s": round(wall, 1),
        "video": str(video) if video else None,
        "learning_curve": str(curve),
        "config": asdict(cfg),
        "code": run_metadata(),
    }
    if loop is not None:
        summary["feedback"] = loop.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _method(reward: Any, feedback: FeedbackSource | None) -> registry.Method | None:
    """The registered method ``reward`` names (None for ``"env"``, a function or a callable), checked against
    ``feedback`` before anything is built."""
    if not isinstance(reward, str) or reward == "env":
        return None
    method = registry.get(reward)
    if method.build is None and method.model is None:
        raise ValueError(
            f"method {reward!r} is not a reward train() builds; the ones it builds are {registry.names('train')}"
        )
    if method.feedback is not None and not isinstance(feedback, method.feedback):
        kind = method.feedback.__name__
        raise ValueError(f"reward={reward!r} learns from feedback= of type {kind}, got {type(feedback).__name__}")
    if method.feedback is None and feedback is not None:
        raise ValueError(f"reward={reward!r} learns from no feedback, but feedback= is given")
    return method


def _resolve_config(
    env: Any,
    algo: str,
    total_steps: int,
    config: Any,
    n_envs: int | None,
    method: registry.Method | None,
    method_defaults: bool,
) -> TrainConfig:
    """The family's defaults, the method's defaults for the family (with ``method_defaults``), ``config``, and the
    method's own settings laid under all of them (``Method.configure``)."""
    spec_hint = env if isinstance(env, str) else getattr(env, "spec_name", "")
    defaults = method.name if method is not None and method_defaults else None
    cfg = load_train_config(family_of(spec_hint), algo, total_steps, config, defaults)
    if n_envs is not None:
        cfg = replace(cfg, n_envs=n_envs)
    if method is not None and method.model is not None:
        unknown = set(cfg.preference) - method.model.settings()
        if unknown:
            raise ValueError(
                f"unknown preference: keys {sorted(unknown)} for {method.model.__name__}; it takes "
                f"{sorted(method.model.settings())}"
            )
    return method.configure(cfg) if method is not None and method.configure is not None else cfg


def _feedback_loop(
    reward_model: LearnedReward,
    source: FeedbackSource,
    eval_env: gym.Env,
    store: FeedbackStore | str | Path | None,
    out: Path,
    cfg: TrainConfig,
    seed: int,
    state: dict,
    resume: bool,
) -> tuple[LearnedReward, FeedbackLoop]:
    """The reward model (reloaded from the checkpoint when the run resumes) and its FeedbackLoop. Labels are kept
    per run: a resumed run continues its own, a fresh start begins a new run in the store."""
    saved = _saved_state(out / "checkpoints") if resume else {}
    run = cfg.feedback.get("run") or saved.get("feedback_run") or f"{out.name}-{uuid.uuid4().hex[:8]}"
    state["feedback_run"] = run
    model_path = out / "checkpoints" / "reward_model.pt"
    if saved and model_path.exists():
        reward_model = type(reward_model).load(model_path)
    source.attach(eval_env)
    store = store if isinstance(store, FeedbackStore) else FeedbackStore(store or out / "feedback.db")
    settings = {k: v for k, v in cfg.feedback.items() if k != "run"}
    defaults = {"video_dir": out / "segments", "log_path": out / "feedback.jsonl", "seed": seed}
    loop = FeedbackLoop(reward_model, source, store, run=run, model_path=model_path, **{**defaults, **settings})
    return reward_model, loop


def _final_evaluation(
    model: BaseAlgorithm, eval_env: gym.Env, eval_log: Path, cfg: TrainConfig, seed: int, start: float, labels
) -> dict[str, float]:
    """The last evaluation: the logged one when it was at the final step, else a fresh one (logged too)."""
    rows = _read_eval_log(eval_log)
    if rows and rows[-1]["steps"] == model.num_timesteps:
        return {k: v for k, v in rows[-1].items() if k not in ("steps", "wall_time_s", "labels")}
    final = evaluate(model, eval_env, cfg.eval_episodes, seed=stream_seed(seed, "eval"))
    _append_eval(eval_log, model.num_timesteps, final, start, labels)
    return final


def _eval_video(model: BaseAlgorithm, eval_env: gym.Env, out: Path, cfg: TrainConfig, seed: int) -> Path | None:
    """``out/eval.mp4``: ``video_episodes`` episodes of the final policy, each last frame held half a second, so
    that short (early-terminated) episodes can be seen."""
    if not cfg.video_episodes:
        return None
    trajectories = collect(eval_env, model, n_episodes=cfg.video_episodes, render=True, seed=stream_seed(seed, "video"))
    fps = video_fps(eval_env)
    clips = [np.concatenate([t.frames, np.repeat(t.frames[-1:], fps // 2, axis=0)]) for t in trajectories]
    return write_video(np.concatenate(clips), out / "eval.mp4", fps=fps)


def _new_model(cfg: TrainConfig, venv: VecEnv, seed: int, out: Path, use_her: bool) -> BaseAlgorithm:
    kwargs = dict(cfg.algo_kwargs)
    noise_std = kwargs.pop("action_noise_std", None)
    if noise_std:
        n_actions = int(np.prod(venv.action_space.shape))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), noise_std * np.ones(n_actions))
    if cfg.algo in ("sac", "td3"):
        kwargs["buffer_size"] = int(min(kwargs.get("buffer_size", 1_000_000), cfg.total_steps))
        if use_her:
            kwargs["replay_buffer_class"] = HerReplayBuffer
            kwargs["replay_buffer_kwargs"] = dict(cfg.her)
    policy = "MultiInputPolicy" if isinstance(venv.observation_space, spaces.Dict) else "MlpPolicy"
    return ALGOS[cfg.algo](
        policy, venv, seed=seed, tensorboard_log=str(out / "tb"), device=cfg.device, verbose=0, **kwargs
    )


def _saved_state(directory: Path) -> dict:
    path = directory / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _load_checkpoint(directory: Path, state: dict, venv: VecEnv, cfg: TrainConfig) -> tuple[BaseAlgorithm, dict] | None:
    model_path = directory / "model.zip"
    saved = _saved_state(directory)
    if not (model_path.exists() and saved):
        return None
    mismatch = {k: (saved.get(k), v) for k, v in state.items() if saved.get(k) != v}
    if mismatch:
        raise ValueError(
            f"{directory.parent} holds a checkpoint of another run ({mismatch}, saved vs asked); "
            "choose another out_dir or pass resume=False to start over"
        )
    model = ALGOS[cfg.algo].load(model_path, env=venv, device=cfg.device)
    buffer = directory / "replay_buffer.pkl"
    if isinstance(model, OffPolicyAlgorithm) and buffer.exists():
        with warnings.catch_warnings():
            # HER warns that it drops the unfinished last episode: right here, as training restarts with a reset.
            warnings.filterwarnings("ignore", message="The last trajectory in the replay buffer will be truncated")
            model.load_replay_buffer(buffer)
    return model, saved


def _truncate_eval_log(path: Path, steps: int) -> None:
    """Drop evaluations a killed run logged after its last checkpoint, so the curve has no duplicated steps."""
    if not path.exists():
        return
    rows = [row for row in _read_eval_log(path) if row["steps"] <= steps]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
