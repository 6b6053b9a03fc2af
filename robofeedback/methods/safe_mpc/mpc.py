"""Penalty (log-barrier) MPC with a safety constraint linear in learnable parameters (Xie et al., arXiv 2407.04216).

Over a horizon N with known dynamics x_{k+1} = f(x_k, u_k), the plan u = (u_0, ..., u_{N-1}) solves

    min_u  B(u; theta) = J(u) - gamma * log(-g_theta(xi))
    J(u) = sum_k c(x_k, u_k; goal) + h(x_N),      g_theta(xi) = phi_0(xi) + theta^T phi(xi)

with xi = (x_0, u_0, ..., x_N) the predicted trajectory (single shooting: the states are functions of u) and
u inside its box. IPOPT (through CasADi) solves it, warm-started from the previous plan shifted by one step.
The log barrier is relaxed below -``relax`` (a quadratic continuation, so that the objective is defined, and
smooth, even where a guess of theta calls the plan unsafe); above it the barrier is exact.

Besides the plan, :meth:`SafeMPC.gradients` gives what a directional correction needs at the plan: grad_u J,
phi_0(xi), phi(xi) and their Jacobians d phi_0 / du and d phi / du; :meth:`SafeMPC.barrier_gradient` gives
grad_u B under any theta (the simulated human's, under the true one). The features are the game's
(:mod:`robofeedback.methods.safe_mpc.games`: RBFs over position, polynomials, or any object with the same
interface).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robofeedback.methods.safe_mpc.games import GameModel, PolynomialFeatures, RBFFeatures, StateFeatures

__all__ = ["Plan", "PolynomialFeatures", "RBFFeatures", "SafeMPC", "StateFeatures"]


def _casadi():
    try:
        import casadi
    except ImportError:
        raise ImportError("safe MPC needs CasADi: pip install 'robofeedback[safety]'") from None
    return casadi


class _CasadiOps:
    """The operations the game models use, on CasADi expressions."""

    def __init__(self, ca):
        self.exp, self.sin, self.cos, self.sqrt, self.vertcat = ca.exp, ca.sin, ca.cos, ca.sqrt, ca.vertcat


@dataclass
class Plan:
    """A solved MPC plan: controls ``u`` (N, n_u), predicted states ``x`` (N + 1, n_x), the task cost J, the plan's
    constraint value g under the theta it was planned with, whether IPOPT converged, and its wall time."""

    u: np.ndarray
    x: np.ndarray
    cost: float
    g: float
    converged: bool
    seconds: float


class SafeMPC:
    """The barrier MPC of a :class:`~robofeedback.methods.safe_mpc.games.GameModel` (horizon, gamma and control box
    from the model unless given). ``ipopt`` options are passed to IPOPT (printing is off by default)."""

    def __init__(
        self,
        model: GameModel,
        horizon: int | None = None,
        gamma: float | None = None,
        relax: float = 1e-3,
        ipopt: dict | None = None,
    ):
        ca = _casadi()
        self.model = model
        self.N = int(horizon or model.horizon)
        self.gamma = float(model.gamma if gamma is None else gamma)
        if self.N < 1 or not self.gamma > 0 or not relax > 0:
            raise ValueError(f"need horizon >= 1, gamma > 0 and relax > 0, got {self.N}, {self.gamma}, {relax}")
        self.relax = float(relax)
        self.features = model.features
        self.r = self.features.r
        n_x, n_u, N = model.n_x, model.n_u, self.N
        ops = _CasadiOps(ca)
        x0, goal = ca.SX.sym("x0", n_x), ca.SX.sym("goal", n_x)
        theta = ca.SX.sym("theta", self.r)
        U = ca.SX.sym("u", n_u * N)  # u_0, ..., u_{N-1}, stacked
        states, cost = [x0], 0
        for k in range(N):
            u_k = U[k * n_u : (k + 1) * n_u]
            cost = cost + model.stage_cost(states[-1], u_k, goal, ops)
            states.append(model.dynamics(states[-1], u_k, ops))
        cost = cost + model.terminal_cost(states[-1], goal, ops)
        phi0, phi = self.features.plan(states, ops)
        phi = ca.vertcat(*phi)
        g = phi0 + ca.dot(theta, phi)
        # -log(-g) for g < -relax; below, its second-order Taylor continuation at g = -relax
        d = self.relax
        barrier = ca.if_else(g < -d, -ca.log(-g), -ca.log(d) + (g + d) / d + 0.5 * ((g + d) / d) ** 2)
        objective = cost + self.gamma * barrier
        X = ca.horzcat(*states).T
        self._rollout = ca.Function("rollout", [x0, U], [X])
        self._cost = ca.Function("cost", [x0, U, goal], [cost, ca.gradient(cost, U)])
        self._phi = ca.Function("phi", [x0, U], [phi0, phi, ca.gradient(phi0, U), ca.jacobian(phi, U)])
        self._g = ca.Function("g", [x0, U, theta], [g])
        self._barrier_grad = ca.Function("grad_B", [x0, U, theta, goal], [ca.gradient(objective, U)])
        options = {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes", "ipopt.max_iter": 200}
        options.update({f"ipopt.{k}": v for k, v in (ipopt or {}).items()})
        nlp = {"x": U, "p": ca.vertcat(x0, goal, theta), "f": objective}
        self._solver = ca.nlpsol("safe_mpc", "ipopt", nlp, options)
        self._lbu = np.tile(model.u_low, N)
        self._ubu = np.tile(model.u_high, N)
        self._warm: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the warm start (a new episode)."""
        self._warm = None

    def plan(self, x0: np.ndarray, theta: np.ndarray, goal: np.ndarray) -> Plan:
        """The plan from ``x0`` under ``theta``, warm-started from the last plan shifted by one step."""
        theta = np.asarray(theta, dtype=np.float64).reshape(self.r)
        m = self.model
        if self._warm is None:
            guess = np.zeros(m.n_u * self.N)
        else:
            guess = np.concatenate([self._warm[m.n_u :], self._warm[-m.n_u :]])
        start = time.perf_counter()
        sol = self._solver(x0=guess, p=np.concatenate([x0, goal, theta]), lbx=self._lbu, ubx=self._ubu)
        seconds = time.perf_counter() - start
        u = np.asarray(sol["x"]).reshape(-1)
        self._warm = u
        converged = bool(self._solver.stats()["success"])
        cost, _ = self._cost(x0, u, goal)
        g = float(self._g(x0, u, theta))
        return Plan(u.reshape(self.N, m.n_u), self.states(x0, u), float(cost), g, converged, seconds)

    def states(self, x0: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The predicted states (N + 1, n_x) of controls ``u``."""
        return np.asarray(self._rollout(x0, np.asarray(u).reshape(-1)))

    def gradients(self, x0: np.ndarray, u: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
        """What a correction's cut needs at the plan ``u``: ``grad_J`` (N n_u,), ``phi0`` (scalar), ``phi`` (r,),
        ``dphi0`` (N n_u,) and ``dphi`` (r, N n_u)."""
        u = np.asarray(u).reshape(-1)
        _, grad_j = self._cost(x0, u, goal)
        phi0, phi, dphi0, dphi = self._phi(x0, u)
        return {
            "grad_J": np.asarray(grad_j).reshape(-1),
            "phi0": float(phi0),
            "phi": np.asarray(phi).reshape(-1),
            "dphi0": np.asarray(dphi0).reshape(-1),
            "dphi": np.asarray(dphi).reshape(self.r, -1),
        }

    def constraint(self, x0: np.ndarray, u: np.ndarray, theta: np.ndarray) -> float:
        """g_theta of the plan ``u`` from ``x0``."""
        return float(self._g(x0, np.asarray(u).reshape(-1), np.asarray(theta, dtype=np.float64)))

    def barrier_gradient(self, x0: np.ndarray, u: np.ndarray, theta: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """grad_u B(u; theta) (N n_u,) at the plan ``u``."""
        grad = self._barrier_grad(x0, np.asarray(u).reshape(-1), np.asarray(theta, dtype=np.float64), goal)
        return np.asarray(grad).reshape(-1)
