"""Learning a safety constraint from directional corrections by cutting planes (Xie et al., arXiv 2407.04216).

The hypothesis space Theta_0 is a box of constraint parameters (optionally narrowed by prior cuts). A person
who sees the robot's plan head somewhere unsafe gives a direction a in the control space; padded to the first
control, a_bar = [a; 0; ...; 0]. The hypothesis is that a_bar points downhill on the barrier objective under
the true parameters: <a_bar, grad_u B(u; theta_H)> < 0, and that the plan is still safe under theta_H,
g_theta_H(xi) < 0. Multiplying by -g > 0 makes the first affine in theta, the paper's cut

    h^T theta < b,   h = -(a_bar^T grad_u J) phi(xi) + gamma (d phi / du) a_bar,
                     b = (a_bar^T grad_u J) phi_0(xi) - gamma (d phi_0 / du)^T a_bar,

and the second is the feasibility cut phi(xi)^T theta <= -phi_0(xi). The next guess is the centre of the
maximum-volume ellipsoid {C v + d : |v| <= 1} inside what remains (max log det C: by our own Newton barrier
method, or cvxpy), whose log-volume is tracked. Each central cut removes at least a fixed share of the
volume, Vol_{k+1} <= (1 - 1/r) Vol_k, so if the true constraint's neighbourhood (volume V_min) is never cut,
at most

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


class _SymmetricBasis:
    """Index tables for Newton's method over symmetric r x r matrices, parametrised by their upper triangle: each
    parameter p = (i, j), i <= j, moves the basis matrix B_p = e_i e_j^T + o_p e_j e_i^T (``off`` o_p = [i < j]).

    For p = (i, j) and q = (k, l) the Hessian of log det needs tr(X B_p X B_q) = (1 + o_p o_q) X_il X_jk +
    (o_p + o_q) X_ik X_jl, whose factors are gathered from X at flat positions kept as P x P tables (X_il at (p, q)
    is X_jk at (q, p)); the |E a|^2 terms need tr(M B_p B_q) = [j = k] M_il + o_q [j = l] M_ik + o_p [i = k] M_jl +
    o_p o_q [i = l] M_jk, a sparse sum kept as (Hessian position, M position, weight) lists.
    """

    def __init__(self, r: int):
        self.iu, self.ju = np.triu_indices(r)
        self.P = len(self.iu)
        i, j = self.iu[:, None], self.ju[:, None]
        k, l_ = self.iu[None, :], self.ju[None, :]
        self.off = (self.iu != self.ju).astype(np.float64)
        op, oq = self.off[:, None], self.off[None, :]
        self.c_cross, self.c_straight = 1.0 + op * oq, op + oq
        self.il, self.ik, self.jl = (np.ravel(a * r + c) for a, c in ((i, l_), (i, k), (j, l_)))
        positions, sources, weights = [], [], []
        for match, a, c, w in (
            (j == k, i, l_, 1.0),
            (j == l_, i, k, oq),
            (i == k, j, l_, op),
            (i == l_, j, k, op * oq),
        ):
            w = np.broadcast_to(w, (self.P, self.P)) * match
            rows, cols = np.nonzero(w)
            positions.append(rows * self.P + cols)
            sources.append(np.broadcast_to(a * r + c, w.shape)[rows, cols])
            weights.append(w[rows, cols])
        self.m_positions, self.m_sources, self.m_weights = (np.concatenate(x) for x in (positions, sources, weights))

    def log_det_hessian(self, X: np.ndarray) -> np.ndarray:
        """tr(X B_p X B_q) for every p, q (a new P x P array; products in place, into few temporaries)."""
        x = X.ravel()
        il, out, jl = np.empty((3, self.P, self.P))
        np.take(x, self.il, out=il.ravel())  # X_il at (p, q); X_jk is its transpose
        np.multiply(il, il.T, out=out)
        out *= self.c_cross
        np.take(x, self.ik, out=il.ravel())
        np.take(x, self.jl, out=jl.ravel())
        il *= jl
        il *= self.c_straight
        out += il
        return out

    def trace_hessian(self, M: np.ndarray) -> np.ndarray:
        """tr(M B_p B_q) for every p, q, flattened."""
        return np.bincount(self.m_positions, self.m_weights * M.ravel()[self.m_sources], minlength=self.P * self.P)


@functools.lru_cache(maxsize=8)
def _symmetric_basis(r: int) -> _SymmetricBasis:
    """The index tables for r x r matrices, built once per dimension (every solve of a learner uses the same)."""
    return _SymmetricBasis(r)


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


def max_volume_ellipsoid(
    A: np.ndarray, b: np.ndarray, gap: float = 1e-3, mu: float = 30.0
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The maximum-volume ellipsoid {E v + d : |v| <= 1} in the polytope {theta : A theta <= b}: ``(d, E, log det E)``,
    or None when the polytope has no interior.

    A barrier method: minimise -t log det E - sum_i log((b_i - a_i^T d)^2 - |E a_i|^2) by Newton's method over the
    symmetric E and d, from the Chebyshev centre and t = m / 10, raising t by ``mu`` until the duality gap 2m / t is
    below ``gap``; the centring at every t but the last stops early, once half the squared Newton decrement is below
    1 (the last: below 1e-3). The gap is in log det E, so 1e-3 is a volume within 0.1% of the largest; after 15
    random central corrections at r = 20 the centre then lies within 2e-3 of the exact one, in the ellipsoid's own
    units, in 26 Newton steps per solve (41 for a gap of 1e-5 and a last decrement of 1e-6).
    (The same problem as cvxpy's log_det formulation, ``solver="cvxpy"``, solved without a generic conic solver.)
    """
    with _threadpools().limit(limits=1):  # small dense matrices: threads only add overhead (and contend with training)
        return _newton_mve(A, b, gap, mu)


def _newton_mve(A: np.ndarray, b: np.ndarray, gap: float, mu: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    from scipy.linalg.lapack import dposv

    m, r = A.shape
    d, rho = chebyshev_center(A, b)
    if d is None:
        return None
    basis = _symmetric_basis(r)
    iu, ju, P = basis.iu, basis.ju, basis.P

    def at(E, d):
        """(log det E, sum_i log q_i, A E, the slacks s, q) at a point, or None outside the barrier's domain."""
        try:
            L = np.linalg.cholesky(E)
        except np.linalg.LinAlgError:
            return None
        V, s = A @ E, b - A @ d
        q = s * s - (V * V).sum(1)
        if np.any(s <= 0) or np.any(q <= 0):
            return None
        return 2.0 * np.log(np.diag(L)).sum(), np.log(q).sum(), V, s, q

    def newton_parts(E, V, s, q):
        """The Newton system's pieces at a point that do not depend on t (a new t at the same point reuses them):
        the Hessian and gradient of log det E, the rest of the Hessian, and the gradient of sum_i log q_i."""
        X = np.linalg.inv(E)
        M = (A * (2.0 / q)[:, None]).T @ A
        G = np.empty((m, P + r))  # grad log q_i: over the upper triangle of E, then over d
        np.multiply(V[:, iu], A[:, ju], out=G[:, :P])
        G[:, :P] += basis.off * V[:, ju] * A[:, iu]
        G[:, :P] *= -2.0
        np.multiply(-2.0 * s[:, None], A, out=G[:, P:])
        G /= q[:, None]
        rest = G.T @ G
        rest[:P, :P] += basis.trace_hessian(M).reshape(P, P)  # the |E a|^2 parts
        rest[P:, P:] -= M
        return basis.log_det_hessian(X), (1.0 + basis.off) * X[iu, ju], rest, G.sum(0)

    E = 0.5 * rho * np.eye(r)
    point = at(E, d)
    parts = newton_parts(E, *point[2:])
    t = m / 10.0
    while True:
        last = 2 * m / t < gap
        for _ in range(100):  # Newton's method at this t
            log_det_hessian, log_det_grad, rest, q_grad = parts
            grad = -q_grad
            grad[:P] -= t * log_det_grad
            H = rest.copy()
            H[:P, :P] += t * log_det_hessian
            _, step, info = dposv(H, -grad)  # the barrier is strictly convex, so H is positive definite: Cholesky
            if info != 0:  # numerically singular (a flat polytope): the least-squares step
                step = -np.linalg.lstsq(H, grad, rcond=None)[0]
            decrement = float(-grad @ step)
            # Only the last t needs a close centre; before it, a rough one is a good enough start for the next.
            if decrement / 2 < (1e-3 if last else 1.0):
                break
            dE = np.zeros((r, r))
            dE[iu, ju] = step[:P]
            dE[ju, iu] = step[:P]
            f0, alpha = -t * point[0] - point[1], 1.0
            while True:  # backtracking (Armijo) line search
                trial = at(E + alpha * dE, d + alpha * step[P:])
                if trial is not None and -t * trial[0] - trial[1] <= f0 - 0.25 * alpha * decrement:
                    break
                alpha *= 0.5
                if alpha < 1e-12:
                    break
            if trial is None or alpha < 1e-12:  # no descent left at machine precision: as centred as it gets
                break
            E, d, point = E + alpha * dE, d + alpha * step[P:], trial
            parts = newton_parts(E, *point[2:])
        if last:
            break
        t *= mu
    return d, E, float(point[0])


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
    each correction is recorded.
    """

    low: np.ndarray
    high: np.ndarray
    epsilon: float = 0.05
    v_min: float | None = None
    prior: tuple[np.ndarray, np.ndarray] | None = None
    store: Any = None
    run: str = "safe-mpc"
    source: str = "script:simulated-human"
    solver: str = "newton"
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
        if self.solver not in ("newton", "cvxpy"):
            raise ValueError(f"solver must be 'newton' or 'cvxpy', got {self.solver!r}")
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
        if self.solver == "newton":
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
        # The same set with fewer rows, and each Newton step costs about linearly in the rows.
        slack = (b - A @ center) / np.maximum(np.linalg.norm(A @ E, axis=1), 1e-300)
        self._redundant.update(np.flatnonzero(active)[slack > 2 * self.r].tolist())
        log_volume = logdet + math.log(self.unit_ball)
        center = np.asarray(center, dtype=np.float64).copy()
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
