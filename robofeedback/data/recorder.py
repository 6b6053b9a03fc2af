"""Recording what a vectorized env does during training, as trajectories to cut segments from."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from robofeedback.data.trajectory import Segment, Trajectory, flat_obs, stack_obs
from robofeedback.envs import make


def _row(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v[i]) for k, v in obs.items()}
    return np.array(obs[i])


class _Episode:
    def __init__(self, obs: Any, agent_pos: Any, frame: np.ndarray | None, state: np.ndarray | None = None):
        self.obs, self.actions, self.rewards, self.infos = [obs], [], [], []
        self.path = [np.asarray(agent_pos if agent_pos is not None else np.full(3, np.nan), dtype=np.float64)]
        self.frames = None if frame is None else [frame]
        self.states = None if state is None else [state]

    def add(self, action, next_obs, info: dict, frame: np.ndarray | None) -> None:
        self.actions.append(np.array(action))
        self.obs.append(next_obs)
        self.rewards.append(float(info.get("env_reward", np.nan)))
        self.infos.append({k: v for k, v in info.items() if k not in ("frame", "terminal_observation", "sim_state")})
        self.path.append(np.asarray(info.get("agent_pos", np.full(3, np.nan)), dtype=np.float64))
        if self.frames is not None:
            if frame is None:
                self.frames = None  # frames stopped coming: keep none rather than a partial set
            else:
                self.frames.append(frame)
        if self.states is not None:
            state = info.get("sim_state")
            self.states = None if state is None else [*self.states, state]

    def trajectory(self, env_spec: str, terminated: bool, truncated: bool, episode_id: str) -> Trajectory:
        return Trajectory(
            obs=stack_obs(self.obs),
            actions=np.stack(self.actions),
            env_rewards=np.asarray(self.rewards),
            infos=list(self.infos),
            agent_path=np.stack(self.path),
            terminated=terminated,
            truncated=truncated,
            frames=np.stack(self.frames) if self.frames is not None else None,
            env_spec=env_spec,
            id=episode_id,
            sim_states=np.stack(self.states) if self.states is not None else None,
        )


class RolloutRecorder:
    """Keeps the most recent ``capacity`` steps of every sub-env of a VecEnv as trajectories.

    Fed by :class:`~robofeedback.rl.wrappers.VecRewardWrapper` after every step;
    :meth:`sample_segments` cuts segments of a given length from finished and
    running episodes (an episode that ended sooner is one shorter segment).
    With ``keep_frames`` the rendered frames of each step are kept too, in every
    ``frames_every``-th episode of each sub-env (the 1st, (k+1)th, ...). With
    ``keep_states`` the simulator's state at every step is kept instead (from
    ``info["sim_state"]``), so that frames are rendered only for the segments that are
    shown (:class:`ClipRenderer`). Trajectory ids start with a random ``name`` so that
    segment ids stay unique across runs that share a feedback store.
    """

    def __init__(
        self,
        env_spec: str,
        capacity: int = 20_000,
        keep_frames: bool = False,
        name: str | None = None,
        frames_every: int = 1,
        keep_states: bool = False,
    ):
        if capacity <= 0 or frames_every <= 0:
            raise ValueError(f"capacity and frames_every must be positive, got {capacity} and {frames_every}")
        if keep_frames and keep_states:
            raise ValueError("keep the frames or the simulator states (to render frames later), not both")
        self.env_spec, self.capacity, self.keep_frames = env_spec, capacity, keep_frames
        self.keep_states = keep_states
        self.frames_recorded = 0  # frames that reached the recorder (each one rendered during training)
        self.frames_every = frames_every
        self._started: list[int] = []  # episodes begun per sub-env
        self.name = name or uuid.uuid4().hex[:10]
        self.finished: deque[Trajectory] = deque()
        self._steps_finished = 0
        self._running: list[_Episode] = []
        self._episode_count = 0

    def start(self, obs: Any, reset_infos: list[dict]) -> None:
        """Begin recording every sub-env from its current observation."""
        n = len(reset_infos)
        self._started = [0] * n
        self._running = [self._new_episode(i, _row(obs, i), reset_infos[i]) for i in range(n)]

    def _new_episode(self, i: int, obs: Any, info: dict) -> _Episode:
        self._started[i] += 1
        frame = info.get("frame") if self.wants_frames(i) else None
        self.frames_recorded += frame is not None
        return _Episode(obs, info.get("agent_pos"), frame, info.get("sim_state") if self.keep_states else None)

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has been called (the sub-envs' episodes are being recorded)."""
        return bool(self._running)

    def wants_frames(self, i: int) -> bool:
        """Whether sub-env ``i``'s running episode is one whose frames are kept."""
        return self.keep_frames and (self._started[i] - 1) % self.frames_every == 0

    def set_first_frame(self, i: int, frame: np.ndarray) -> None:
        """The first frame of sub-env ``i``'s episode, when it was not rendered at its reset (the episode must
        not have taken a step yet, and must be one whose frames are kept)."""
        episode = self._running[i]
        if episode.actions or not self.wants_frames(i):
            raise ValueError(f"sub-env {i}'s episode has begun or keeps no frames: no first frame to set")
        episode.frames = [frame]
        self.frames_recorded += 1

    def add(
        self,
        actions,
        next_obs,
        obs_after_reset,
        dones,
        infos: list[dict],
        reset_infos: list[dict],
        frames: Sequence[np.ndarray | None] | None,
    ) -> None:
        """One vectorized step: ``next_obs`` holds terminal observations where ``dones``; ``obs_after_reset``
        is what the VecEnv returned (the first observation of the next episode where ``dones``); ``frames``:
        per sub-env, its rendered frame or None."""
        for i, episode in enumerate(self._running):
            frame = frames[i] if frames is not None and self.keep_frames else None
            self.frames_recorded += frame is not None
            episode.add(actions[i], _row(next_obs, i), infos[i], frame)
            if dones[i]:
                truncated = bool(infos[i].get("TimeLimit.truncated", False))
                self._finish(episode, terminated=not truncated, truncated=truncated)
                info = reset_infos[i] if reset_infos else {}
                self._running[i] = self._new_episode(i, _row(obs_after_reset, i), info)

    def _finish(self, episode: _Episode, terminated: bool, truncated: bool) -> None:
        self._episode_count += 1
        trajectory = episode.trajectory(self.env_spec, terminated, truncated, f"{self.name}-ep{self._episode_count}")
        self.finished.append(trajectory)
        self._steps_finished += len(trajectory)
        while self._steps_finished > self.capacity and len(self.finished) > 1:
            self._steps_finished -= len(self.finished.popleft())

    def trajectories(self) -> list[Trajectory]:
        """Finished episodes, then the running ones so far (those with at least one step)."""
        running = [
            e.trajectory(self.env_spec, False, False, f"{self.name}-run{i}-{self._episode_count}")
            for i, e in enumerate(self._running)
            if e.actions
        ]
        return list(self.finished) + running

    @property
    def num_steps(self) -> int:
        return self._steps_finished + sum(len(e.actions) for e in self._running)

    def recent_steps(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The observations (flattened) and actions of the newest ``n`` recorded steps (fewer if fewer exist)."""
        obs, actions, count = [], [], 0
        for trajectory in reversed(self.trajectories()):
            if count >= n:
                break
            take = min(len(trajectory), n - count)
            steps = trajectory.segment(len(trajectory) - take, len(trajectory))
            obs.append(flat_obs(steps.obs)[:take])
            actions.append(np.asarray(steps.actions, dtype=np.float32).reshape(take, -1))
            count += take
        if not obs:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(obs), np.concatenate(actions)

    def _windows(self, length: int, with_frames: bool) -> list[tuple[Trajectory, list[int]]]:
        """Per trajectory (``with_frames``: recorded with its frames or its simulator states), the starts of its
        ``length``-step windows; an episode that ended in fewer steps has one, its whole length."""
        out = []
        for trajectory in self.trajectories():
            if with_frames and trajectory.frames is None and trajectory.sim_states is None:
                continue
            ended = trajectory.terminated or trajectory.truncated
            if len(trajectory) >= length:
                out.append((trajectory, list(range(len(trajectory) - length + 1))))
            elif ended:
                out.append((trajectory, [0]))
        return out

    def sample_segments(
        self, n: int, length: int, rng: np.random.Generator, with_frames: bool = False
    ) -> list[Segment]:
        """``n`` segments of ``length`` steps, drawn uniformly over all places they fit (``with_frames``: in the
        episodes recorded with their frames); episodes that ended in fewer steps count as one whole-episode
        segment. Empty if nothing fits yet."""
        windows = [(t, start) for t, starts in self._windows(length, with_frames) for start in starts]
        if not windows:
            return []
        picks = rng.integers(len(windows), size=n)
        return [self._window(*windows[i], length) for i in picks]

    def sample_pairs(
        self,
        n: int,
        length: int,
        rng: np.random.Generator,
        with_frames: bool = False,
        same_episode: float = 0.0,
    ) -> list[tuple[Segment, Segment]]:
        """``n`` pairs of distinct ``length``-step segments, the first drawn as :meth:`sample_segments` draws, the
        second, for a share ``same_episode`` of the pairs, from another place in the same episode (where the
        episode has one), else anywhere. Within one episode the goal, the object and the start are the same,
        so a label says which of two behaviours was better, not which episode was luckier."""
        if not 0.0 <= same_episode <= 1.0:
            raise ValueError(f"same_episode is a share of the pairs, in [0, 1], got {same_episode}")
        groups = self._windows(length, with_frames)
        windows = [(g, start) for g, (_, starts) in enumerate(groups) for start in starts]
        pairs: list[tuple[Segment, Segment]] = []
        if len(windows) < 2:
            return pairs
        for _ in range(n):
            first, start = windows[rng.integers(len(windows))]
            trajectory, starts = groups[first]
            if len(starts) > 1 and rng.random() < same_episode:
                other = starts[rng.integers(len(starts) - 1)]
                second, other = first, other if other < start else other + 1  # any start but the first's
            else:
                second, other = windows[rng.integers(len(windows))]
                if (second, other) == (first, start):
                    continue
            pairs.append((self._window(trajectory, start, length), self._window(groups[second][0], other, length)))
        return pairs

    @staticmethod
    def _window(trajectory: Trajectory, start: int, length: int) -> Segment:
        return trajectory.segment(start, min(start + length, len(trajectory)))


class ClipRenderer:
    """Renders segments recorded with simulator states (``RolloutRecorder(keep_states=True)``) in an env of their
    own, made with the training envs' spec and options at ``size``: the training envs are never touched, and only
    the clips someone will watch are rendered. :attr:`frames_rendered` counts the frames."""

    def __init__(self, env_spec: str, make_kwargs: dict[str, Any] | None = None, size: int | tuple[int, int] = 224):
        self.env_spec, self.size = env_spec, size
        self.make_kwargs = dict(make_kwargs or {})  # make() keeps render_size out of an env's make_kwargs
        self.frames_rendered = 0
        self._env = None

    def render(self, segment: Segment) -> np.ndarray:
        """The segment's frames, one per observation, as the training env would have rendered them at ``size``."""
        states = segment.sim_states
        if states is None:
            raise ValueError(f"segment {segment.id} was recorded without simulator states: nothing to render from")
        if self._env is None:
            self._env = make(self.env_spec, seed=0, render_size=self.size, **self.make_kwargs)
            self._env.reset(seed=0)  # some simulators connect on their first reset
        frames = np.stack(
            [self._env.render_state(state, pos) for state, pos in zip(states, segment.agent_path, strict=True)]
        )
        self.frames_rendered += len(frames)
        return frames

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
