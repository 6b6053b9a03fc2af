"""The online preference loop (PEBBLE): query, label, learn the reward, relabel the replay buffer, repeat.

:class:`FeedbackLoop` is an SB3 callback. It records the agent's rollouts; every
``every`` env steps it cuts candidate segment pairs from the recent ones,
selects the most informative (ensemble disagreement by default; the first round
is uniform), stores the segments and queries in the :class:`FeedbackStore`,
hands the queries to a feedback source (a scripted teacher, a judge, or the
human queue, waiting or not), trains the reward ensemble on every label
gathered so far, and relabels the off-policy replay buffer with the new reward.
Under an on-policy algorithm (PPO) a round at the end of a rollout relabels the
rollout buffer instead and recomputes its returns and advantages, so that the
update that follows learns from the new reward. With ``pretrain_steps`` the
agent first explores with PEBBLE's state-entropy reward, and the first queries
come after that.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnvWrapper

from robofeedback.config import require_positive_ints
from robofeedback.data.minari_io import check_dataset_id, write_minari
from robofeedback.data.recorder import ClipRenderer, RolloutRecorder
from robofeedback.data.store import FeedbackStore, StoredSegment
from robofeedback.data.trajectory import Segment
from robofeedback.data.video import clip_name, write_video
from robofeedback.protocols import FeedbackSource, LearnedReward
from robofeedback.rewards.preference import SELECTIONS, PreferenceData, StateEntropyReward
from robofeedback.rl.wrappers import VecRewardWrapper

CURVE_POINTS = 400  # the most points a run's curves in its status keep (the latest)


def find_reward_wrapper(venv) -> VecRewardWrapper:
    """The :class:`VecRewardWrapper` in a chain of VecEnv wrappers."""
    env = venv
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecRewardWrapper):
            return env
        env = env.venv
    raise TypeError(
        "FeedbackLoop needs the training env wrapped in a VecRewardWrapper with the reward model "
        "(robofeedback.rl.train does this for learned rewards)"
    )


class FeedbackLoop(BaseCallback):
    """Gathers preference feedback during training and keeps the reward model and replay buffer up to date.

    Rounds run at ``first_round`` env steps (default min(1000, every), B-Pref's seed
    steps; never before ``pretrain_steps``) and every ``every`` steps after. Each asks
    for up to ``labels_per_round`` labels on pairs of ``segment_length``-step segments
    until ``budget`` labels have been asked for, choosing among
    ``candidates_per_label`` x as many random pairs by ``selection``. Labels are stored
    under ``run``; ``video_dir`` receives segment videos for sources that watch them,
    ``model_path`` the reward model after every update, ``log_path`` a JSON line per
    round. ``max_epochs`` caps the reward model's training per round. For sources that answer
    later (people in the app), the store is checked every ``poll_every`` steps between
    rounds and the reward retrained when new labels are in. After each retraining the
    run's status in the store gets the label count and the model's agreement with each
    source. A source that compares single transitions (``source.segment_length``, e.g.
    HERON's) sets the segment length. For a source that watches videos, with
    ``render_on_query`` (the default, where the envs can save their simulator's state) the
    state is recorded at every step and only the queried segments are rendered, at
    ``clip_size`` (default: the training envs' render size), in a render env of their own;
    otherwise frames are rendered live in every ``frame_episodes``-th episode of each
    sub-env, and segments are cut from those: rendering can cost more than the policy's
    updates (panda reach: about 40 ms a frame against 30 ms an SAC step here). When the reward
    model learns from pseudo-labels (SURF's ``pseudo_threshold``), each round also cuts
    ``unlabelled_ratio`` x as many unlabelled pairs as it asks about (at least
    ``labels_per_round`` x that), which replace the previous round's. The reward model is told
    the env steps so far at every step (its :attr:`~robofeedback.protocols.LearnedReward.steps`, for RUNE's
    decaying bonus). With ``minari_dataset`` (a Minari dataset id, ``namespace/name-vN``) the finished episodes the
    recorder keeps when training ends (its last ``recorder_capacity`` steps, with their simulator states where clips
    render on query) are written as that Minari dataset under ``$MINARI_DATASETS_PATH``
    (:func:`~robofeedback.data.minari_io.write_minari`).
    """

    def __init__(
        self,
        reward_model: LearnedReward,
        source: FeedbackSource,
        store: FeedbackStore,
        run: str = "default",
        every: int = 5000,
        first_round: int | None = None,
        segment_length: int = 50,
        labels_per_round: int = 50,
        budget: int = 1000,
        selection: str = "disagreement",
        candidates_per_label: int = 10,
        pretrain_steps: int = 0,
        relabel: bool = True,
        recorder_capacity: int = 20_000,
        max_epochs: int | None = None,
        video_dir: str | Path | None = None,
        model_path: str | Path | None = None,
        log_path: str | Path | None = None,
        seed: int = 0,
        poll_every: int = 500,
        frame_episodes: int = 1,
        render_on_query: bool = True,
        clip_size: int | tuple[int, int] | list[int] | None = None,
        unlabelled_ratio: int = 10,
        same_episode: float = 0.0,
        minari_dataset: str | None = None,
    ):
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        require_positive_ints(
            every=every,
            segment_length=segment_length,
            labels_per_round=labels_per_round,
            candidates_per_label=candidates_per_label,
            poll_every=poll_every,
            frame_episodes=frame_episodes,
            unlabelled_ratio=unlabelled_ratio,
        )
        if not 0.0 <= same_episode <= 1.0:
            raise ValueError(f"same_episode is the share of pairs cut from one episode, in [0, 1], got {same_episode}")
        segment_length = source.segment_length or segment_length
        first_round = min(1000, every) if first_round is None else first_round  # B-Pref: 1000 seed steps first
        if budget < 0 or pretrain_steps < 0 or first_round < 0:
            raise ValueError("budget, pretrain_steps and first_round must be >= 0")
        if source.needs_frames and video_dir is None:
            raise ValueError(f"{type(source).__name__} looks at videos: give video_dir for the segment videos")
        if minari_dataset is not None:
            check_dataset_id(minari_dataset)  # before training, not after it
        self.reward_model, self.source, self.store, self.run = reward_model, source, store, run
        self.every, self.segment_length = every, segment_length
        self.labels_per_round, self.budget = labels_per_round, budget
        self.selection, self.candidates_per_label = selection, candidates_per_label
        self.pretrain_steps, self.relabel, self.max_epochs = pretrain_steps, relabel, max_epochs
        self.first_round = max(first_round, pretrain_steps)
        self.recorder_capacity = recorder_capacity
        self.video_dir = Path(video_dir) if video_dir is not None else None
        self.model_path = Path(model_path) if model_path is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.rng = np.random.default_rng(seed)
        self.rounds = 0
        self._started = time.time()
        self.last_stats: dict[str, float] = {}
        self.data: PreferenceData | None = None
        self._segments: dict[str, Segment | StoredSegment] = {}
        self._last_label_id = 0
        self._next_round = self.first_round
        self.poll_every = poll_every
        self._next_poll = 0
        self.frame_episodes = frame_episodes
        self.render_on_query, self.clip_size = render_on_query, clip_size
        self.renderer: ClipRenderer | None = None
        self.unlabelled_ratio = unlabelled_ratio
        self.same_episode = same_episode
        self.minari_dataset = minari_dataset
        self.agreement_curve: list[dict] = []  # after each retraining: labels so far and agreement per source
        self.unlabelled: PreferenceData | None = None
        self._wrapper: VecRewardWrapper | None = None
        self._pretraining = False
        self._due = False
        self._warned = False

    # -- SB3 hooks ------------------------------------------------------------------------------

    def _init_callback(self) -> None:
        self._started = time.time()
        self._wrapper = find_reward_wrapper(self.training_env)
        try:
            spec = self.training_env.get_attr("spec_name")[0]
        except AttributeError:
            spec = ""
        if self.source.needs_frames and self.render_on_query and self._states_available():
            self.renderer = ClipRenderer(spec, self.training_env.get_attr("make_kwargs")[0], self._clip_size())
        self.recorder = RolloutRecorder(
            spec,
            self.recorder_capacity,
            keep_frames=self.source.needs_frames and self.renderer is None,
            frames_every=self.frame_episodes,
            keep_states=self.renderer is not None,
        )
        self._wrapper.attach_recorder(self.recorder)
        self.agreement_curve = list(self.store.run_statuses().get(self.run, {}).get("agreement_curve") or [])
        if self.store.labels(kind="preference", run=self.run):  # a resumed run: learn what the store holds
            self._learn()
            self.rounds = 1
        steps = self.num_timesteps
        self._next_round = self.first_round if steps < self.first_round else self._round_after(steps)
        if steps < self.pretrain_steps:
            self._pretraining = True
            self._wrapper.set_reward_fn(StateEntropyReward(seed=int(self.rng.integers(2**31))))

    def _states_available(self) -> bool:
        """Whether the training envs can save their simulator's state (robofeedback envs of families that can)."""
        try:
            self.training_env.env_method("sim_state", indices=[0])
        except (AttributeError, NotImplementedError):
            return False
        return True

    def _clip_size(self) -> tuple[int, int]:
        """The size clips render at: ``clip_size``, or the training envs' own render size."""
        if self.clip_size is not None:
            size = self.clip_size
            return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        return int(self.training_env.get_attr("render_width")[0]), int(self.training_env.get_attr("render_height")[0])

    def _on_training_end(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
        if self.minari_dataset is not None and self.recorder.finished:
            write_minari(
                list(self.recorder.finished),
                self.minari_dataset,
                observation_space=self.training_env.observation_space,
                action_space=self.training_env.action_space,
                algorithm_name=f"{type(self.model).__name__} with a learned reward (robofeedback run {self.run})",
                make_kwargs=self._make_kwargs(),
            )

    def _make_kwargs(self) -> dict:
        """The options the training envs were made with (robofeedback envs record them), else none."""
        try:
            return self.training_env.get_attr("make_kwargs")[0]
        except AttributeError:
            return {}

    def _round_after(self, steps: int) -> int:
        """The first scheduled round (first_round, first_round + every, ...) after ``steps``."""
        return self.first_round + ((steps - self.first_round) // self.every + 1) * self.every

    def _on_step(self) -> bool:
        self.reward_model.steps = self.num_timesteps
        if self.num_timesteps >= self._next_round:
            self._next_round = self._round_after(self.num_timesteps)
            self._due = True
        return True

    def _on_rollout_end(self) -> None:
        # Rounds run once the step's transition is in the replay buffer (SB3 stores it after on_step), so that
        # relabelling covers it too.
        if self._due:
            self._due = False
            self.feedback_round()
        elif not self.source.immediate and self.rounds and self.num_timesteps >= self._next_poll:
            # People answer between rounds: learn from their labels as they arrive, not only at the next round.
            self._next_poll = self.num_timesteps + self.poll_every
            if self.store.labels(kind="preference", run=self.run, after_id=self._last_label_id):
                self.last_stats = {**self.last_stats, **self._learn()}

    # -- one round ------------------------------------------------------------------------------

    @property
    def labels_requested(self) -> int:
        """Queries this run has put to its sources so far (the budget they count against)."""
        return len(self.store.queries(run=self.run, kind="preference"))

    def feedback_round(self) -> dict[str, float]:
        """Query, wait for labels as the source does, retrain the reward, relabel the buffer; returns the round's
        figures (also logged to SB3's logger under ``feedback/``)."""
        if self._pretraining:
            self._pretraining = False
            self._wrapper.set_reward_fn(self.reward_model)
        self._warn_about_termination()
        asked = 0
        n_queries = min(self.labels_per_round, self.budget - self.labels_requested)
        if n_queries > 0:
            asked = self._ask(n_queries)
        if self.reward_model.wants_unlabelled:
            self.unlabelled = self._unlabelled_pairs(max(asked, self.labels_per_round) * self.unlabelled_ratio)
        stats = self._learn()
        stats.update(
            {
                "round": self.rounds,
                "queries": asked,
                "labels_requested": self.labels_requested,
                "steps": int(self.num_timesteps),
                "wall_time_s": round(time.time() - self._started, 2),
            }
        )
        self.rounds += 1
        self.last_stats = {**self.last_stats, **stats}  # rounds without new labels keep the last accuracies
        for key, value in stats.items():
            self.logger.record(f"feedback/{key}", value)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(json.dumps(stats) + "\n")
        return stats

    def _warn_about_termination(self) -> None:
        if self._warned or not any(t.terminated for t in self.recorder.finished):
            return
        self._warned = True
        warnings.warn(
            f"episodes of {self.recorder.env_spec or 'this env'} end early (terminated, not by the time limit). "
            "A reward learned from preferences is only known up to a constant, so early termination can teach the "
            "agent to seek or avoid the end of its episode; prefer an env that runs episodes to the time limit "
            "(e.g. panda's terminate_on_success=False), or standardise the learned reward and add a positive offset "
            "(config preference: {normalize: true, offset: 1}; train --normalize-reward --reward-offset 1)",
            stacklevel=2,
        )

    @property
    def labels_used(self) -> int:
        """Labels the reward model has been trained on so far."""
        return 0 if self.data is None else len(self.data)

    def summary(self) -> dict[str, float]:
        """Labels asked for and used, rounds run, the reward model's accuracies from its last retraining, and the
        frames rendered for clips (on query, or live during training)."""
        counts = self.store.counts(run=self.run)
        frames = self.renderer.frames_rendered if self.renderer is not None else self.recorder.frames_recorded
        return {
            "rounds": self.rounds,
            "queries": self.labels_requested,
            "labels": self.labels_used,
            "skipped": counts.get("queries.skipped", 0),
            "source": self.source.source or type(self.source).__name__,
            "selection": self.selection,
            "frames_rendered": frames,
            **{k: self.last_stats[k] for k in ("heldout_accuracy", "train_accuracy") if k in self.last_stats},
            **({"levels": levels} if (levels := self.source.level_fractions()) else {}),
        }

    def _ask(self, n_queries: int) -> int:
        n_candidates = n_queries * (1 if self.rounds == 0 or self.selection == "uniform" else self.candidates_per_label)
        pairs = self.recorder.sample_pairs(
            n_candidates, self.segment_length, self.rng, self.source.needs_frames, self.same_episode
        )
        if not pairs:
            return 0
        strategy = "uniform" if self.rounds == 0 else self.selection
        chosen = self.reward_model.select(PreferenceData.from_pairs(pairs), n_queries, strategy)
        pairs = [pairs[i] for i in chosen]
        unique = {s.id: s for pair in pairs for s in pair}
        new = {i: s for i, s in unique.items() if i not in self._segments}  # asked about before: stored, rendered
        if self.renderer is not None:
            for segment in new.values():
                segment.rendered = self.renderer.render(segment)
        videos = [self._write_video(s) for s in new.values()] if self.source.needs_frames else None
        self.store.add_segments(list(new.values()), run=self.run, video_paths=videos)
        self._segments.update(new)
        query_ids = [self.store.add_query("preference", [a.id, b.id], run=self.run) for a, b in pairs]
        queries = [self.store.get_query(q) for q in query_ids]
        self.source.answer(self.store, queries, {i: self._segments[i] for i in unique})
        self.source.wait(self.store, query_ids)
        return len(query_ids)

    def _unlabelled_pairs(self, n: int) -> PreferenceData | None:
        """``n`` random pairs of recent segments, without labels (SURF's pool for pseudo-labels)."""
        pairs = self.recorder.sample_pairs(n, self.segment_length, self.rng, same_episode=self.same_episode)
        return PreferenceData.from_pairs(pairs) if pairs else None

    def _write_video(self, segment: Segment) -> str | None:
        if segment.frames is None:
            return None
        path = write_video(segment.frames, self.video_dir / clip_name(segment.id), fps=10)
        return str(path.resolve())  # for the app, any cwd

    def _segment(self, segment_id: str) -> Segment | StoredSegment:
        if segment_id not in self._segments:
            self._segments[segment_id] = self.store.get_segment(segment_id)
        return self._segments[segment_id]

    def _preference_data(self, labels) -> PreferenceData | None:
        usable = [lb for lb in labels if lb.value != "skip"]
        if not usable:
            return None
        pairs = [(self._segment(lb.segment_ids[0]), self._segment(lb.segment_ids[1])) for lb in usable]
        levels = [lb.payload.get("level") for lb in usable]
        return PreferenceData.from_pairs(pairs, [lb.value for lb in usable], levels)

    def _agreement(self, labels) -> dict[str, float]:
        """Per source, the fraction of its strict labels the current reward model agrees with."""
        out = {}
        for source in sorted({lb.source for lb in labels}):
            data = self._preference_data([lb for lb in labels if lb.source == source])
            accuracy = self.reward_model.accuracy(data) if data is not None else float("nan")
            if np.isfinite(accuracy):
                out[source] = round(accuracy, 4)
        return out

    def _learn(self) -> dict[str, float]:
        # The whole run's labels each time, so that a label taken back in the app drops out of training too.
        labels = self.store.labels(kind="preference", run=self.run)
        fresh = [lb for lb in labels if lb.id > self._last_label_id]
        self._last_label_id = max([self._last_label_id] + [lb.id for lb in labels])
        new = self._preference_data(fresh)
        stats: dict[str, float] = {"new_labels": 0 if new is None else len(new)}
        if new is None:
            return stats
        # Accuracy on labels the model has not been trained on yet: held out by construction.
        stats["heldout_accuracy"] = self.reward_model.accuracy(new)
        self.data = self._preference_data(labels)
        if self.reward_model.policy_steps:  # agent-regularized models (VARP) also learn from the policy's data
            self.reward_model.set_policy_data(*self.recorder.recent_steps(self.reward_model.policy_steps))
        on_policy = self.relabel and isinstance(self.model, OnPolicyAlgorithm) and self.model.rollout_buffer.full
        space = self.model.action_space
        before = rollout_rewards(self.model.rollout_buffer, self.reward_model, space) if on_policy else None
        fit = self.reward_model.fit(self.data, self.max_epochs, unlabelled=self.unlabelled)
        stats.update({"labels": len(self.data), **{k: v for k, v in fit.items() if k != "pairs"}})
        if self.relabel and isinstance(self.model, OffPolicyAlgorithm):
            stats["relabelled"] = relabel_replay_buffer(self.model.replay_buffer, self.reward_model)
        elif before is not None:
            stats["relabelled"] = relabel_rollout_buffer(
                self.model.rollout_buffer, self.reward_model, space, before, self.locals["values"], self.locals["dones"]
            )
        if self.model_path is not None:
            self.reward_model.save(self.model_path)
        levels = self.source.level_fractions()
        agreement = self._agreement(labels)
        self.agreement_curve = (self.agreement_curve + [{"labels": len(self.data), **agreement}])[-CURVE_POINTS:]
        self.store.set_run_status(
            self.run,
            steps=int(self.num_timesteps),
            labels=len(self.data),
            budget=self.budget,
            heldout_accuracy=None if np.isnan(stats["heldout_accuracy"]) else round(stats["heldout_accuracy"], 4),
            agreement=agreement,
            agreement_curve=self.agreement_curve,
            **({"levels": {k: round(v, 3) for k, v in levels.items()}} if levels else {}),  # HERON's deciding levels
        )
        return stats


def relabel_replay_buffer(buffer: ReplayBuffer, reward_model: LearnedReward, chunk: int = 65_536) -> int:
    """Overwrite the rewards of every stored transition with ``reward_model``'s (PEBBLE); returns how many."""
    if isinstance(buffer.observations, dict):
        raise TypeError("relabelling needs a flat-observation replay buffer (learned rewards train without HER)")
    size = buffer.buffer_size if buffer.full else buffer.pos
    n_envs = buffer.n_envs
    obs = buffer.observations[:size].reshape(size * n_envs, -1)
    actions = buffer.actions[:size].reshape(size * n_envs, -1)
    rewards = np.empty(size * n_envs, dtype=np.float32)
    for start in range(0, len(obs), chunk):
        rewards[start : start + chunk] = reward_model.rewards_of(
            obs[start : start + chunk], actions[start : start + chunk]
        )
    buffer.rewards[:size] = rewards.reshape(size, n_envs)
    return size * n_envs


def rollout_rewards(buffer, reward_model: LearnedReward, action_space) -> np.ndarray:
    """``reward_model``'s rewards for every step of an on-policy rollout buffer, shaped like ``buffer.rewards``
    (the buffer keeps the policy's unclipped actions; the env, and so the reward, saw them clipped to
    ``action_space``)."""
    obs = buffer.observations.reshape(buffer.buffer_size * buffer.n_envs, -1)
    actions = buffer.actions.reshape(buffer.buffer_size * buffer.n_envs, -1)
    if isinstance(action_space, spaces.Box):
        actions = np.clip(actions, action_space.low.reshape(1, -1), action_space.high.reshape(1, -1))
    return reward_model.rewards_of(obs, actions).reshape(buffer.buffer_size, buffer.n_envs)


def relabel_rollout_buffer(
    buffer, reward_model: LearnedReward, action_space, before: np.ndarray, last_values, dones
) -> int:
    """Move a full rollout buffer's rewards from the reward model's old values (``before``, what the agent was
    given) to its new ones, keeping what SB3 added for time-limit bootstrapping, and recompute the returns and
    GAE advantages from them (``last_values`` and ``dones`` of the rollout's last step); returns the steps."""
    if isinstance(buffer.observations, dict):
        raise TypeError("relabelling needs a flat-observation rollout buffer")
    buffer.rewards += rollout_rewards(buffer, reward_model, action_space) - before
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    return buffer.buffer_size * buffer.n_envs
