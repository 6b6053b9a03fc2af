"""Collecting trajectories from an env with a policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robofeedback.data.trajectory import Trajectory, stack_obs

Policy = Callable[[Any], np.ndarray]


def as_policy(policy: Any, env: gym.Env, deterministic: bool = True) -> Policy:
    """Turn ``None`` (uniform random actions), an SB3 model (anything with ``predict``) or a callable
    ``obs -> action`` into a callable ``obs -> action``."""
    if policy is None or policy == "random":
        return lambda obs: env.action_space.sample()
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError(f"policy must be None, 'random', an SB3 model or a callable obs -> action, got {type(policy)}")


def collect(
    env: gym.Env,
    policy: Any = None,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    render: bool = False,
    deterministic: bool = True,
    seed: int | None = None,
    progress: bool = False,
    states: bool = False,
) -> list[Trajectory]:
    """Roll ``policy`` out in ``env`` for ``n_episodes`` whole episodes or ``n_steps`` steps (exactly one of them).

    With ``n_steps`` the last trajectory may be cut short (neither terminated
    nor truncated). With ``render`` every observation's frame is kept; with ``states`` the simulator's state at
    every observation (``Trajectory.sim_states``, for envs that can save it), so that frames can be rendered later
    in another env of the same spec. ``seed`` seeds the first reset; later episodes continue the env's random
    stream.
    """
    if (n_episodes is None) == (n_steps is None):
        raise ValueError("give exactly one of n_episodes and n_steps")
    budget = n_episodes if n_episodes is not None else n_steps
    if not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ValueError(f"n_episodes / n_steps must be a positive integer, got {budget!r}")
    act = as_policy(policy, env, deterministic)
    if states:
        if not hasattr(env, "set_state_capture"):
            raise ValueError(f"{type(env).__name__} is not a robofeedback env: it cannot record simulator states")
        env.set_state_capture(True)
    spec = getattr(env, "spec_name", None) or (env.spec.id if env.spec is not None else type(env).__name__)
    trajectories: list[Trajectory] = []
    total_steps = 0
    bar = tqdm(total=budget, unit="ep" if n_episodes else "step", disable=not progress, desc=f"collect {spec}")
    next_seed = seed
    while (n_episodes is not None and len(trajectories) < n_episodes) or (
        n_steps is not None and total_steps < n_steps
    ):
        obs, info = env.reset(seed=next_seed)
        episode_seed, next_seed = next_seed, None
        observations, actions, rewards, infos = [obs], [], [], []
        path = [np.asarray(info.get("agent_pos", np.full(3, np.nan)), dtype=np.float64)]
        frames = [env.render()] if render else None
        sim_states = [info["sim_state"]] if states else None
        terminated = truncated = False
        while not (terminated or truncated):
            action = np.asarray(act(obs))
            obs, reward, terminated, truncated, info = env.step(action)
            if sim_states is not None:
                sim_states.append(info["sim_state"])
            info = {k: v for k, v in info.items() if k not in ("frame", "sim_state")}
            observations.append(obs)
            actions.append(action)
            rewards.append(float(info.get("env_reward", reward)))
            infos.append(info)
            path.append(np.asarray(info.get("agent_pos", np.full(3, np.nan)), dtype=np.float64))
            if frames is not None:
                frames.append(env.render())
            total_steps += 1
            if n_steps is not None:
                bar.update(1)
                if total_steps >= n_steps:
                    break
        trajectories.append(
            Trajectory(
                obs=stack_obs(observations),
                actions=np.stack(actions),
                env_rewards=np.asarray(rewards, dtype=np.float64),
                infos=infos,
                agent_path=np.stack(path),
                terminated=bool(terminated),
                truncated=bool(truncated),
                frames=np.stack(frames) if frames is not None else None,
                env_spec=spec,
                seed=episode_seed,
                sim_states=np.stack(sim_states) if sim_states is not None else None,
            )
        )
        if n_episodes is not None:
            bar.update(1)
    bar.close()
    if states:
        env.set_state_capture(False)
    return trajectories
