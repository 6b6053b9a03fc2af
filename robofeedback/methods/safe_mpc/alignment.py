"""Safe MPC alignment: the robot plans with its current guess of the constraint, a person corrects it, it learns.

:func:`align` runs one trial on a safety game: up to ``episodes`` attempts at the task, learning carried over
between them. At every step the MPC plans under the learner's theta; the human (simulated, at the terminal, or
in the annotation app through the feedback store) may send a direction for the first control; each
direction becomes cuts, the learner re-centres and the MPC re-plans. An attempt ends at the goal, in an unsafe
state (a violation, which the learner takes as a cut too) or at the step limit. The trial succeeds at the first
attempt the robot does on its own: the goal reached with no correction and no violation, i.e. the person had
nothing left to teach. It also ends when the hypothesis space is declared misspecified, or after the last
attempt. (Stopping at the first attempt that reaches the goal with the person's help would end a misspecified
trial as a success whenever the person steers the robot through, before anything could be declared; that
attempt is recorded too, as ``first_success``.)

The simulated human follows the paper: with probability ``p`` at each step whose plan comes within
``threshold`` of the true boundary (threshold < g_theta_H(xi) < 0), it sends a = -grad_{u_0} B(u; theta_H),
the steepest way down the barrier objective under the true constraint, normalised, with optional noise. It
leaves alone a plan that is already what the true constraint's barrier would choose, one whose gradient is
small (|grad_{u_0} B(u; theta_H)| <= ``min_gradient`` |grad_{u_0} J|): at theta_H the gradient vanishes, and
its direction would be noise.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from robofeedback.data.store import FeedbackStore
from robofeedback.methods.safe_mpc.cutting_plane import CuttingPlaneLearner
from robofeedback.methods.safe_mpc.mpc import SafeMPC


class SimulatedHuman:
    """Corrects plans that come near the true boundary, as the paper's simulated user does."""

    def __init__(
        self,
        theta_true: np.ndarray,
        p: float = 0.3,
        threshold: float = 2.0,
        noise: float = 0.0,
        min_gradient: float = 0.05,
        seed: int | None = 0,
    ):
        if not 0 < p <= 1 or not threshold > 0 or noise < 0 or min_gradient < 0:
            raise ValueError(
                f"need 0 < p <= 1, threshold > 0, noise >= 0 and min_gradient >= 0, got {p}, {threshold}, {noise}, "
                f"{min_gradient}"
            )
        self.theta_true = np.asarray(theta_true, dtype=np.float64)
        self.p, self.threshold, self.noise, self.min_gradient = p, threshold, noise, min_gradient
        self.rng = np.random.default_rng(seed)
        self.source = "script:simulated-human"

    def direction(self, mpc: SafeMPC, x0: np.ndarray, goal: np.ndarray, u: np.ndarray, frame=None, t: int = 0):
        """A unit direction for u_0, or None (no correction this step)."""
        grads = mpc.gradients(x0, u, goal)
        g = grads["phi0"] + float(self.theta_true @ grads["phi"])
        if not -self.threshold < g < 0 or self.rng.random() >= self.p:
            return None
        grad_g = grads["dphi0"] + grads["dphi"].T @ self.theta_true
        grad_b = grads["grad_J"] - mpc.gamma * grad_g / g  # the exact barrier gradient under theta_H
        n_u = mpc.model.n_u
        a = -grad_b[:n_u]
        if np.linalg.norm(a) <= self.min_gradient * np.linalg.norm(grads["grad_J"][:n_u]):
            return None
        a = a / np.linalg.norm(a)
        if self.noise:
            a = a + self.noise * self.rng.normal(size=a.shape)
            a = a / max(np.linalg.norm(a), 1e-12)
        return a


KEYS = {
    1: {"+": [1.0], "-": [-1.0]},
    2: {"right": [1.0, 0.0], "left": [-1.0, 0.0], "up": [0.0, 1.0], "down": [0.0, -1.0]},
    3: {
        "x+": [1.0, 0, 0],
        "x-": [-1.0, 0, 0],
        "y+": [0, 1.0, 0],
        "y-": [0, -1.0, 0],
        "z+": [0, 0, 1.0],
        "z-": [0, 0, -1.0],
    },
}


class TerminalHuman:
    """A person at the terminal: shown the state and the plan's first steps (and where the frame is saved), they
    type a direction (the game's keys; Enter for none)."""

    source = "human:terminal"

    def __init__(self, ask=input, show=print, frame_path: str | None = None):
        self.ask, self.show, self.frame_path = ask, show, frame_path

    def direction(self, mpc: SafeMPC, x0, goal, u, frame=None, t: int = 0):
        keys = KEYS[mpc.model.n_u]
        if frame is not None and self.frame_path:
            iio.imwrite(self.frame_path, frame)
        plan = mpc.states(x0, u)
        self.show(f"t={t} state {np.round(x0, 3)}; plan heads to {np.round(plan[min(5, len(plan) - 1)], 3)}")
        while True:
            answer = self.ask(f"direction ({', '.join(keys)}; Enter for none): ").strip()
            if not answer:
                return None
            if answer in keys:
                return np.asarray(keys[answer], dtype=np.float64)
            self.show(f"type one of {list(keys)}, or press Enter")


class StoreHuman:
    """People in the annotation app's correction tab: each step posts a correction query with the state, the plan,
    the game's direction keys and the rendered frame (a PNG in ``frame_dir``), and waits up to ``wait_seconds``
    for a direction (no answer in time: no correction)."""

    def __init__(
        self,
        store,
        run: str = "safe-mpc",
        wait_seconds: float = 2.0,
        poll_seconds: float = 0.2,
        frame_dir: str | Path = "runs/safe-mpc/frames",
    ):
        self.store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        self.run, self.wait_seconds, self.poll_seconds = run, wait_seconds, poll_seconds
        self.frame_dir = Path(frame_dir)
        self.source = "human:app"
        self.game = None

    def attach(self, game) -> None:
        """Take the game, to say where the robot is in the frame (the app turns a click into a direction) and what
        the task is."""
        self.game = game
        self.store.set_run_status(
            self.run, env=f"safety:{game.name}", task="to reach the green goal without entering the red region"
        )

    def direction(self, mpc: SafeMPC, x0, goal, u, frame=None, t: int = 0):
        plan = mpc.states(x0, u)
        meta: dict[str, Any] = {
            "state": list(map(float, x0)),
            "t": t,
            "plan": plan.tolist(),
            "keys": KEYS[mpc.model.n_u],
        }
        if frame is not None:
            self.frame_dir.mkdir(parents=True, exist_ok=True)
            path = self.frame_dir / f"{self.run}-{time.time_ns()}.png"
            iio.imwrite(path, frame)
            meta["frame_path"] = str(path.resolve())
            if self.game is not None and mpc.model.n_u == 2:  # a top view: image right is +x, image up is +y
                (px, py), _ = self.game.camera_for().project(self.game.agent_position(np.asarray(x0)))
                meta["robot_pixel"] = [float(px), float(py)]
        query = self.store.add_query("correction", [], run=self.run, meta=meta)
        deadline = time.monotonic() + self.wait_seconds
        while self.store.get_query(query).status == "pending":
            if time.monotonic() > deadline:
                self.store.expire_queries(run=self.run, older_than=0)
                return None
            time.sleep(self.poll_seconds)
        labels = [lb for lb in self.store.labels(kind="correction", run=self.run) if lb.query_id == query]
        return np.asarray(labels[0].payload["direction"], dtype=np.float64) if labels else None


@dataclass
class Trial:
    """What one trial gave: success (an attempt without help), the attempts, corrections, violations, the
    certificate, MVE solve times and (when declared) why the hypothesis space is misspecified.
    ``first_success`` is the first attempt that reached the goal without a violation, with or without
    corrections (0: none did), and ``first_success_corrections`` the corrections used up to its end."""

    success: bool
    attempts: int
    corrections: int
    first_success: int
    first_success_corrections: int | None
    violations: int
    bound: int
    misspecified: bool
    reason: str
    theta: list[float]
    theta_error: float
    mve_seconds: list[float] = field(default_factory=list)
    mpc_seconds: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list)


def align(
    env,
    human=None,
    episodes: int = 40,
    seed: int = 0,
    store=None,
    run: str = "safe-mpc",
    record: bool = False,
    epsilon: float | None = None,
    progress: bool = False,
    guess: str = "mve",
) -> Trial:
    """One trial of safe-MPC alignment on a ``safety:<game>`` env (made by ``robofeedback.envs.make``). ``human``
    defaults to a :class:`SimulatedHuman` under the game's true constraint; ``record`` keeps every frame (with
    the plan drawn); corrections go to ``store`` under ``run`` when given. ``guess``: the learner's next guess,
    the ellipsoid's centre or (an ablation) a random point (:class:`CuttingPlaneLearner`)."""
    game = env.game
    model = game.model
    mpc = SafeMPC(model)
    human = human or SimulatedHuman(game.theta_true, seed=seed)
    if hasattr(human, "attach"):
        human.attach(game)
    r = model.features.r
    low, high = model.theta_box
    learner = CuttingPlaneLearner(
        low, high, epsilon=epsilon or model.epsilon, store=store, run=run, source=human.source, guess=guess, seed=seed
    )
    mve, frames, violations, success, mpc_seconds = [], [], 0, False, 0.0
    attempt, first_success, first_success_corrections = 0, 0, None
    for attempt in range(1, episodes + 1):
        state, _ = env.reset(seed=seed * 1000 + attempt)
        mpc.reset()
        x = np.asarray(game.state, dtype=np.float64)
        done, corrections_before = False, learner.corrections
        while not done:
            plan = mpc.plan(x, learner.theta, game.goal)
            mpc_seconds += plan.seconds
            game.plan = plan.x
            frame = env.render() if record or isinstance(human, (TerminalHuman, StoreHuman)) else None
            direction = human.direction(mpc, x, game.goal, plan.u, frame, game.steps)
            if direction is not None:
                status = learner.correct(direction, mpc.gamma, mpc.gradients(x, plan.u, game.goal), x, game.steps)
                mve.append(status.solve_seconds)
                if status.misspecified:
                    break
                plan = mpc.plan(x, learner.theta, game.goal)
                mpc_seconds += plan.seconds
                game.plan = plan.x
            if record:
                frames.append(frame if frame is not None else env.render())
            _, _, terminated, truncated, info = env.step(plan.u[0])
            x = np.asarray(game.state, dtype=np.float64)
            done = terminated or truncated
            if info.get("violation"):  # seen unsafe: a cut too
                violations += 1
                status = learner.violation(model.features.psi(x), model.features.bias, x, game.steps)
                mve.append(status.solve_seconds)
        reached = bool(info.get("success"))  # the goal, without a violation
        helped = learner.corrections > corrections_before
        if reached and not first_success:
            first_success, first_success_corrections = attempt, learner.corrections
        if progress:
            outcome = ("goal reached with help" if helped else "goal reached on its own") if reached else "failure"
            print(f"attempt {attempt}: {outcome}, {learner.corrections} corrections so far", file=sys.stderr)
        if learner.status.misspecified:
            break
        if reached and not helped:
            success = True
            break
    theta = learner.theta
    in_box = np.clip(game.theta_true, low, high)
    return Trial(
        success=success,
        attempts=attempt,
        corrections=learner.corrections,
        first_success=first_success,
        first_success_corrections=first_success_corrections,
        violations=violations,
        bound=learner.bound,
        misspecified=learner.status.misspecified,
        reason=learner.status.reason,
        theta=theta.tolist(),
        theta_error=float(np.linalg.norm(theta - in_box) / np.sqrt(r)),
        mve_seconds=mve,
        mpc_seconds=round(mpc_seconds, 3),
        frames=frames,
    )


def summarize(trials: list[Trial]) -> dict[str, Any]:
    """Success rate, corrections (mean, std), the bound, MVE solve times and how many trials declared
    misspecification; and how many trials reached the goal at all (with help or not), with the corrections used
    until they first did."""
    corrections = [t.corrections for t in trials]
    first = [t.first_success_corrections for t in trials if t.first_success]
    mve = [s for t in trials for s in t.mve_seconds]
    return {
        "trials": len(trials),
        "success_rate": float(np.mean([t.success for t in trials])),
        "corrections_mean": float(np.mean(corrections)),
        "corrections_std": float(np.std(corrections)),
        "corrections_max": int(np.max(corrections)),
        "first_success_rate": len(first) / len(trials),
        "first_success_corrections_mean": float(np.mean(first)) if first else None,
        "first_success_corrections_std": float(np.std(first)) if first else None,
        "bound": trials[0].bound,
        "declared_misspecified": int(sum(t.misspecified for t in trials)),
        "violations": int(sum(t.violations for t in trials)),
        "mve_ms_mean": 1000 * float(np.mean(mve)) if mve else None,
        "mve_ms_max": 1000 * float(np.max(mve)) if mve else None,
    }
