"""Learning a safety constraint from directional corrections by cutting planes (Xie et al., arXiv 2407.04216).

The hypothesis space Theta_0 is a box of constraint parameters (optionally narrowed by prior cuts). A person
who sees the robot's plan head somewhere unsafe gives a direction a in the control space; padded to the first
control, a_bar = [a; 0; ...; 0]. The hypothesis is that a_bar points downhill on the barrier objective under
the true parameters: <a_bar, grad_u B(u; theta_H)> < 0, and that the plan is still safe under theta_H,
g_theta_H(xi) < 0. Multiplying by -g > 0 makes the first affine in theta, the paper's cut

    h^T theta < b,   h = -(a_bar^T grad_u J) phi(xi) + gamma (d phi / du) a_bar,
                     b = (a_bar^T grad_u J) phi_0(xi) - gamma (d phi_0 / du)^T a_bar,

and the second is the feasibility cut phi(xi)^T theta <= -phi_0(xi). The next guess is the centre of the
maximum-volume ellipsoid {C v + d : |v| <= 1} inside what remains (max log det C: by our own primal-dual
interior-point method, or cvxpy), whose log-volume is tracked. Each central cut removes at least a fixed share
of the volume, Vol_{k+1} <= (1 - 1/r) Vol_k, so if the true constraint's neighbourhood (volume V_min) is never
cut, at most

    K = ln(Vol Theta_0 / V_min) / -ln(1 - 1/r)

corrections can come. Misspecification (the hypothesis space cannot hold the true constraint) is declared when
the ellipsoid problem is infeasible, its volume falls below V_min, or more than K corrections have been used.

A violation is evidence too (our addition; the paper ends the attempt and learns nothing from it): a robot
seen in an unsafe state x has c_H(x) = c_0 + theta_H^T psi(x) > 0, so theta_H lies in the halfspace
-psi(x)^T theta <= c_0. The cut keeps theta_H and every parameter that calls x unsafe, so the certificate still
holds; it is deep (the current guess called x safe), and where no hypothesis calls x unsafe it empties the
space at once, which declares the misspecification.

Every correction and its cuts are stored as a ``correction`` label in the feedback store, and every violation
as a ``violation`` label with its cut, so a run replays.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _cvxpy():
    try:
        import cvxpy
    except ImportError:
        raise ImportError("the cutting-plane learner needs cvxpy: pip install 'robofeedback[safety]'") from None
    return cvxpy


def correction_cut(
    direction: np.ndarray,
    gamma: float,
    grad_J: np.ndarray,
    phi0: float,
    phi: np.ndarray,
    dphi0: np.ndarray,
    dphi: np.ndarray,
) -> tuple[np.ndarray, float, np.ndarray, float]:
    """The paper's cut ``(h, b)`` (h^T theta < b) and the feasibility cut ``(phi, -phi0)`` of one correction:
    ``direction`` is a (n_u,) for the first control, or already padded to the plan's length (N n_u,)."""
    a = np.asarray(direction, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)) or not np.any(a):
        raise ValueError(f"a correction's direction must be finite and non-zero, got {a}")
    a_bar = np.zeros_like(np.asarray(grad_J, dtype=np.float64))
    if len(a) > len(a_bar):
        raise ValueError(f"a direction has at most {len(a_bar)} entries (the plan's controls), got {len(a)}")
    a_bar[: len(a)] = a
    slope = float(a_bar @ grad_J)
    h = -slope * np.asarray(phi) + gamma * np.asarray(dphi) @ a_bar
    b = slope * float(phi0) - gamma * float(np.asarray(dphi0) @ a_bar)
    return h, b, np.asarray(phi, dtype=np.float64), -float(phi0)


@functools.cache
def _threadpools():
    """The BLAS thread pools the solver uses (numpy's and scipy's own OpenBLAS), found once per process: looking
    them up takes longer than a solve."""
    import scipy.linalg.lapack  # noqa: F401  (scipy's LAPACK is a library of its own: load it before looking)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def chebyshev_center(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The centre and radius of the largest ball in {theta: A theta <= b} (an LP); (None, 0) when it is empty."""
    from scipy.optimize import linprog

    r = A.shape[1]
    res = linprog(
        np.r_[np.zeros(r), -1.0],
        A_ub=np.c_[A, np.linalg.norm(A, axis=1)],
        b_ub=b,
        bounds=[(None, None)] * r + [(0, None)],
        method="highs",
    )
    if res.status != 0 or res.x[-1] <= 1e-12:
        return None, 0.0
    return res.x[:r], float(res.x[-1])


def _analytic_centre(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The minimiser of -sum_i log(b_i - a_i^T x) (the analytic centre), by damped Newton from an interior x."""
    for _ in range(100):
        y = b - A @ x
        grad = A.T @ (1.0 / y)
        step = -np.linalg.solve((A / (y * y)[:, None]).T @ A, grad)
        decrement = float(-grad @ step)
        if decrement / 2 < 1e-8:
            break
        f0, alpha = -np.log(y).sum(), 1.0
        while alpha >= 1e-12:  # backtracking (Armijo), inside the polytope
            trial = b - A @ (x + alpha * step)
            if np.all(trial > 0) and -np.log(trial).sum() <= f0 - 0.25 * alpha * decrement:
                break
            alpha *= 0.5
        if alpha < 1e-12:
            break
        x = x + alpha * step
    return x


def max_volume_ellipsoid(
    A: np.ndarray, b: np.ndarray, gap: float = 3e-4, centre_tol: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The maximum-volume ellipsoid {E v + d : |v| <= 1} in the polytope {theta : A theta <= b}: ``(d, E, log det E)``,
    or None when the polytope has no interior.

    A primal-dual interior-point method over the centre d and one multiplier z_i per row: m + r unknowns, where
    Newton's method on E itself has r(r + 1)/2 + r (230 at r = 20, against about 70 here). The barrier problem
    max log det E + (mu/2) sum_i log q_i, with slacks y = b - A d and q_i = y_i^2 - |E a_i|^2, has its optimum at

        E = (A^T Z A)^(-1/2),   A^T (z * y) = 0,   z_i q_i = mu,

    (E solves E M + M E = 2 E^-1 for M = A^T Z A). Newton steps on the last two, with E eliminated (so |E a_i|^2
    is the diagonal of A M^-1 A^T), aim at 0.3 times the current mean of z * q; a step keeps y, z and q positive
    and every z_i q_i above a hundredth of their mean. They start at the polytope's analytic centre (found from
    its Chebyshev centre), where z = 2 / y^2 makes A^T (z * y) = 0 and puts every z_i q_i in [1, 2] (from the
    Chebyshev centre itself, on the drone game's long thin polytopes, the steps stalled far from the optimum).
    It stops when the duality gap m * mean(z * q) is below ``gap`` (in log det E: 3e-4 is a volume within 0.03%
    of the largest) and the centre's distance from stationarity, |M^(-1/2) A^T (z * y)| in the ellipsoid's own
    units, is below ``centre_tol``; it warns if 200 steps did not get there. Every iterate's ellipsoid lies
    inside the polytope.
    (The same problem as cvxpy's log_det formulation, ``solver="cvxpy"``, solved without a generic conic solver.)
    """
    with _threadpools().limit(limits=1):  # small dense matrices: threads only add overhead (and contend with training)
        return _primal_dual_mve(A, b, gap, centre_tol)


def _primal_dual_mve(
    A: np.ndarray, b: np.ndarray, gap: float, centre_tol: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    from scipy.linalg import solve_triangular

    m, r = A.shape
    d, _ = chebyshev_center(A, b)
    if d is None:
        return None
    d = _analytic_centre(A, b, d)

    def at(d, z):
        """(y, M, its Cholesky factor L, L^-1 A^T, q) at a point, or None outside the domain (y, z, q > 0)."""
        y = b - A @ d
        if np.any(y <= 0) or np.any(z <= 0):
            return None
        M = (A * z[:, None]).T @ A
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return None
        K = solve_triangular(L, A.T, lower=True)
        q = y * y - (K * K).sum(0)
        return None if np.any(q <= 0) else (y, M, L, K, q)

    z = 2.0 / (b - A @ d) ** 2
    point, converged = at(d, z), False
    for _ in range(200):
        y, M, L, K, q = point
        products = z * q
        mu = products.mean()
        stationarity = A.T @ (z * y)
        centre_error = float(np.linalg.norm(solve_triangular(L, stationarity, lower=True)))
        converged = m * mu < gap and centre_error < centre_tol
        if converged:
            break
        Q = K.T @ K  # A M^-1 A^T: d|E a_i|^2 / dz_j = -Q_ij^2
        J = np.empty((r + m, r + m))
        J[:r, :r] = -M
        J[:r, r:] = A.T * y
        J[r:, :r] = -2.0 * (z * y)[:, None] * A
        np.multiply(z[:, None], Q * Q, out=J[r:, r:])
        J[r:, r:][np.diag_indices(m)] += q
        rhs = np.r_[-stationarity, 0.3 * mu - products]
        try:
            step = np.linalg.solve(J, rhs)
        except np.linalg.LinAlgError:  # numerically singular (a flat polytope): the least-squares step
            step = np.linalg.lstsq(J, rhs, rcond=None)[0]
        dd, dz = step[:r], step[r:]
        alpha = 1.0
        for v, dv in ((y, -A @ dd), (z, dz)):  # at most 99% of the way to the boundary of y > 0, z > 0
            shrinking = dv < 0
            if shrinking.any():
                alpha = min(alpha, 0.99 * float(np.min(-v[shrinking] / dv[shrinking])))
        while alpha >= 1e-12:  # backtracking: q > 0 and near the central path
            trial = at(d + alpha * dd, z + alpha * dz)
            if trial is not None:
                trial_products = (z + alpha * dz) * trial[4]
                if trial_products.min() >= 1e-2 * trial_products.mean():
                    break
            alpha *= 0.5
        if alpha < 1e-12:  # no step left at machine precision: as centred as it gets (still inscribed)
            break
        d, z, point = d + alpha * dd, z + alpha * dz, trial
    if not converged:
        warnings.warn(
            f"the maximum-volume ellipsoid stopped short of its tolerances (duality gap {m * mu:.1e} for {gap:.0e}, "
            f"centre {centre_error:.1e} for {centre_tol:.0e}): the next guess is a less central point",
            RuntimeWarning,
            stacklevel=3,
        )
    values, vectors = np.linalg.eigh(point[1])
    E = (vectors / np.sqrt(values)) @ vectors.T
    return d, E, float(-0.5 * np.log(values).sum())


def hit_and_run(A: np.ndarray, b: np.ndarray, x: np.ndarray, rng: np.random.Generator, steps: int = 50):
    """A near-uniform random point of {theta: A theta <= b}: ``steps`` moves from the interior point ``x``, each to a
    uniform point of the chord through it along a random direction.

    >>> A, b = np.vstack([np.eye(2), -np.eye(2)]), np.ones(4)
    >>> points = np.array([hit_and_run(A, b, np.zeros(2), np.random.default_rng(i)) for i in range(200)])
    >>> bool(np.all(np.abs(points) <= 1)), bool(np.abs(points.mean(0)).max() < 0.15)
    (True, True)
    """
    x = np.array(x, dtype=np.float64)
    for _ in range(steps):
        d = rng.normal(size=len(x))
        d /= np.linalg.norm(d)
        rate, room = A @ d, b - A @ x
        with np.errstate(divide="ignore"):
            limits = room / rate
        high = limits[rate > 1e-12].min(initial=np.inf)
        low = limits[rate < -1e-12].max(initial=-np.inf)
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            continue
        x = x + rng.uniform(low, high) * d
    return x


@dataclass
class Status:
    """Where the learner stands: the current guess, the log-volume of the last ellipsoid, and whether (and why) the
    hypothesis space was declared misspecified."""

    theta: np.ndarray
    log_volume: float
    corrections: int
    misspecified: bool = False
    reason: str = ""
    solve_seconds: float = 0.0
    rows: int = 0  # the halfspaces the ellipsoid was solved in (the box, prior and cuts, less those that can no
    # longer cut the polytope)


@dataclass
class CuttingPlaneLearner:
    """The cutting-plane learner over the box ``low`` .. ``high``.

    ``v_min`` is the volume of the neighbourhood of the true parameters that corrections never cut (default:
    a ball of radius ``epsilon``). ``prior`` holds extra cuts (A, b) with A theta <= b known before any
    correction. ``store`` (a :class:`~robofeedback.data.store.FeedbackStore`), ``run`` and ``source`` say where
    each correction is recorded. ``guess`` is ``"mve"`` (the method: the ellipsoid's centre) or ``"random"`` (an
    ablation: a uniformly random point of what remains, by hit-and-run from the centre, seeded ``seed``; the
    certificate K assumes central cuts and does not hold for it; the misspecification rules are unchanged).
    """

    low: np.ndarray
    high: np.ndarray
    epsilon: float = 0.05
    v_min: float | None = None
    prior: tuple[np.ndarray, np.ndarray] | None = None
    store: Any = None
    run: str = "safe-mpc"
    source: str = "script:simulated-human"
    solver: str = "primal-dual"
    guess: str = "mve"
    seed: int = 0
    cuts: list[tuple[np.ndarray, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape or not np.all(self.high > self.low):
            raise ValueError(f"the box needs low < high in every coordinate, got {self.low} and {self.high}")
        self.r = len(self.low)
        if self.v_min is None:
            if not self.epsilon > 0:
                raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
            self.v_min = self.unit_ball * self.epsilon**self.r
        if not self.v_min > 0:
            raise ValueError(f"v_min must be > 0, got {self.v_min}")
        self.log_v0 = float(np.sum(np.log(self.high - self.low)))
        shrink = 0.5 if self.r == 1 else 1.0 - 1.0 / self.r  # a central cut halves an interval
        self.bound = max(0, math.ceil((self.log_v0 - math.log(self.v_min)) / -math.log(shrink)))
        if self.solver not in ("primal-dual", "cvxpy"):
            raise ValueError(f"solver must be 'primal-dual' or 'cvxpy', got {self.solver!r}")
        if self.guess not in ("mve", "random"):
            raise ValueError(f"guess must be 'mve' or 'random', got {self.guess!r}")
        self._rng = np.random.default_rng(self.seed)
        self.corrections = 0
        self._redundant: set[int] = set()  # rows of _halfspaces() that can no longer cut the polytope
        if self.solver == "cvxpy":
            self._build()
        self.status = self._solve()

    # -- the ellipsoid ---------------------------------------------------------------------------------

    def _halfspaces(self) -> tuple[np.ndarray, np.ndarray]:
        A = [np.eye(self.r), -np.eye(self.r)]
        b = [self.high, -self.low]
        if self.prior is not None:
            A.append(np.atleast_2d(self.prior[0]))
            b.append(np.atleast_1d(self.prior[1]))
        if self.cuts:
            A.append(np.array([h for h, _ in self.cuts]))
            b.append(np.array([c for _, c in self.cuts]))
        return np.vstack(A), np.concatenate(b)

    def _build(self, rows: int | None = None) -> None:
        """A compiled MVE problem with room for ``rows`` halfspaces (unused rows are 0 <= 1), re-solved with new
        data rather than re-compiled while the cuts fit."""
        cp = _cvxpy()
        rows = rows or 2 * self.r + 64
        self._rows = rows
        self._A, self._b = cp.Parameter((rows, self.r)), cp.Parameter(rows)
        self._C, self._d = cp.Variable((self.r, self.r), PSD=True), cp.Variable(self.r)
        constraints = [cp.norm2(self._C @ self._A.T, axis=0) + self._A @ self._d <= self._b]
        self._problem = cp.Problem(cp.Maximize(cp.log_det(self._C)), constraints)

    def _solve(self) -> Status:
        A, b = self._halfspaces()
        scale = np.maximum(np.linalg.norm(A, axis=1), 1e-12)  # unit-norm rows: the same sets, better conditioned
        active = np.ones(len(A), dtype=bool)
        active[sorted(self._redundant)] = False
        A, b = A[active] / scale[active, None], b[active] / scale[active]
        start = time.perf_counter()
        if self.solver == "primal-dual":
            found = max_volume_ellipsoid(A, b)
            outcome = "optimal" if found is not None else "the polytope has no interior"
        else:
            found, outcome = self._solve_cvxpy(A, b)
        seconds = time.perf_counter() - start
        if found is None:
            theta = self.status.theta if hasattr(self, "status") else (self.low + self.high) / 2
            reason = (
                f"the ellipsoid problem has no solution ({outcome}): no parameters agree with every correction and "
                "violation, so the hypothesis space cannot hold the true constraint"
            )
            return Status(theta, -math.inf, self.corrections, True, reason, seconds, len(A))
        center, E, logdet = found
        # John: the polytope lies inside its largest ellipsoid scaled r times about the centre, so a halfspace
        # whose boundary is more than twice that far never cuts it, nor any later (smaller) polytope: drop it.
        # The same set with fewer rows, and each step of the solver costs more with every row.
        slack = (b - A @ center) / np.maximum(np.linalg.norm(A @ E, axis=1), 1e-300)
        self._redundant.update(np.flatnonzero(active)[slack > 2 * self.r].tolist())
        log_volume = logdet + math.log(self.unit_ball)
        center = np.asarray(center, dtype=np.float64).copy()
        if self.guess == "random":
            center = hit_and_run(A, b, center, self._rng)
        return Status(center, log_volume, self.corrections, solve_seconds=seconds, rows=len(A))

    def _solve_cvxpy(self, A: np.ndarray, b: np.ndarray):
        """The MVE problem in cvxpy (max log det C s.t. |C a_i| + a_i^T d <= b_i), compiled once with room for
        cuts; ``(found, outcome)``."""
        if len(A) > self._rows:
            self._build(2 * len(A))
        padded_A, padded_b = np.zeros((self._rows, self.r)), np.ones(self._rows)
        padded_A[: len(A)], padded_b[: len(A)] = A, b
        self._A.value, self._b.value = padded_A, padded_b
        try:
            self._problem.solve(solver="SCS", warm_start=True)
            outcome = self._problem.status
        except _cvxpy().error.SolverError as e:  # the solver gave up: on an empty set, it has nothing to find
            return None, f"solver error: {e}"
        if outcome not in ("optimal", "optimal_inaccurate") or self._C.value is None:
            return None, outcome
        sign, logdet = np.linalg.slogdet(self._C.value)
        return (self._d.value, self._C.value, float(logdet) if sign > 0 else -math.inf), outcome

    @property
    def unit_ball(self) -> float:
        """The volume of the unit ball in r dimensions."""
        return math.pi ** (self.r / 2) / math.gamma(self.r / 2 + 1)

    @property
    def theta(self) -> np.ndarray:
        """The current guess: the centre of the maximum-volume ellipsoid in what remains."""
        return self.status.theta

    # -- corrections -----------------------------------------------------------------------------------

    def add_cut(self, h: np.ndarray, b: float) -> None:
        """Add the halfspace h^T theta <= b (without solving)."""
        h = np.asarray(h, dtype=np.float64).reshape(-1)
        if h.shape != (self.r,) or not np.all(np.isfinite(h)) or not math.isfinite(b):
            raise ValueError(f"a cut needs a finite normal of {self.r} entries and a finite offset, got {h}, {b}")
        if np.any(h):
            self.cuts.append((h, float(b)))

    def recentre(self) -> Status:
        """Solve for the maximum-volume ellipsoid inside the cuts added so far (e.g. with :meth:`add_cut`), move the
        guess to its centre and check for misspecification."""
        self.status = self._check(self._solve())
        return self.status

    def correct(
        self,
        direction: np.ndarray,
        gamma: float,
        gradients: dict[str, np.ndarray],
        state: np.ndarray | None = None,
        t: int = 0,
        note: str | None = None,
    ) -> Status:
        """Take one correction (a direction for the first control, with the MPC's ``gradients`` at the plan that
        was corrected): add its two cuts, re-centre, check for misspecification, and record it in the store."""
        if self.status.misspecified:
            return self.status
        before = self.theta.copy()
        h, b, h_feasible, b_feasible = correction_cut(direction, gamma, **{k: gradients[k] for k in _GRADIENTS})
        self.add_cut(h, b)
        self.add_cut(h_feasible, b_feasible)
        self.corrections += 1
        self.recentre()
        if self.store is not None:
            self.store.add_correction(
                _state_list(state),
                [float(v) for v in np.asarray(direction).reshape(-1)],
                int(t),
                self.source,
                run=self.run,
                note=note,
                feasibility_cut={"h": h_feasible.tolist(), "b": b_feasible},
                **self._record(h, b, before),
            )
        return self.status

    def violation(
        self, psi: np.ndarray, bias: float, state: np.ndarray | None = None, t: int = 0, note: str | None = None
    ) -> Status:
        """Take a violation: the robot was seen in an unsafe state whose constraint features are ``psi`` (psi(x),
        with the family's bias c_0). Adds the cut -psi^T theta <= c_0 (every theta that calls x unsafe), re-centres,
        checks for misspecification and records it in the store."""
        if self.status.misspecified:
            return self.status
        h, b = -np.asarray(psi, dtype=np.float64).reshape(-1), float(bias)
        before = self.theta.copy()
        self.add_cut(h, b)
        if self.recentre().log_volume == -math.inf:
            self.status.reason = (
                "the robot was seen in an unsafe state that no parameters left (those that agree with every "
                "correction and violation so far) call unsafe, so the hypothesis space cannot hold the true constraint"
            )
        if self.store is not None:
            self.store.add_violation(
                _state_list(state), int(t), self.source, run=self.run, note=note, **self._record(h, b, before)
            )
        return self.status

    def _record(self, h: np.ndarray, b: float, before: np.ndarray) -> dict[str, Any]:
        """What a stored correction or violation carries besides its own fields: the cut, the guess before and after,
        the log-volume and whether misspecification was declared."""
        return {
            "cut": {"h": h.tolist(), "b": b},
            "theta_before": before.tolist(),
            "theta_after": self.theta.tolist(),
            "log_volume": self.status.log_volume,
            "misspecified": self.status.misspecified,
        }

    def _check(self, status: Status) -> Status:
        if status.misspecified:
            return status
        if status.log_volume < math.log(self.v_min):
            status.misspecified = True
            status.reason = (
                f"the remaining ellipsoid's volume (log {status.log_volume:.2f}) fell below V_min (log "
                f"{math.log(self.v_min):.2f}): the true constraint's neighbourhood would have been cut, so the "
                "hypothesis space cannot hold it"
            )
        elif self.corrections > self.bound:
            status.misspecified = True
            status.reason = (
                f"{self.corrections} corrections exceed the certified bound K = {self.bound}: with the true "
                "constraint in the hypothesis space, no more than K could have been needed"
            )
        return status

    @classmethod
    def replay(cls, store, run: str, **kwargs: Any) -> CuttingPlaneLearner:
        """A learner rebuilt from the correction and violation labels of ``run`` in ``store`` (their stored cuts, in
        order)."""
        learner = cls(**kwargs)
        for label in store.labels(run=run):
            if label.kind not in ("correction", "violation"):
                continue
            for key in ("cut", "feasibility_cut") if label.kind == "correction" else ("cut",):
                learner.add_cut(np.asarray(label.payload[key]["h"]), label.payload[key]["b"])
            learner.corrections += label.kind == "correction"
            learner.recentre()
        return learner


_GRADIENTS = ("grad_J", "phi0", "phi", "dphi0", "dphi")


def _state_list(state: np.ndarray | None) -> list[float]:
    """A state as the store keeps it (a placeholder [0.0] when none was given)."""
    return [float(v) for v in (state if state is not None else [])] or [0.0]
