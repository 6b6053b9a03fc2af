"""The cutting-plane learner: the paper's cut, the maximum-volume ellipsoid and its solvers, and violations as cuts."""

import math
import warnings

import numpy as np
import pytest

from robofeedback.data.store import FeedbackStore
from robofeedback.methods.safe_mpc.cutting_plane import CuttingPlaneLearner, correction_cut


def test_the_cut_of_a_hand_computed_correction():
    gradients = {
        "grad_J": np.array([2.0, 0.0]),
        "phi0": -3.0,
        "phi": np.array([1.0, 2.0]),
        "dphi0": np.array([0.5, 0.0]),
        "dphi": np.eye(2),
    }
    h, b, h_feasible, b_feasible = correction_cut(np.array([1.0]), 1.0, **gradients)
    # h = -(a.gradJ) phi + gamma dphi a = -2 [1, 2] + [1, 0];  b = (a.gradJ) phi0 - gamma dphi0.a = -6 - 0.5
    assert np.allclose(h, [-1.0, -4.0]) and b == pytest.approx(-6.5)
    assert np.allclose(h_feasible, [1.0, 2.0]) and b_feasible == pytest.approx(3.0)
    with pytest.raises(ValueError, match="non-zero"):
        correction_cut(np.zeros(1), 1.0, **gradients)


def test_the_mve_centre_of_a_box_is_its_centre_and_central_cuts_shrink_the_volume():
    learner = CuttingPlaneLearner(np.array([-1.0, 0.0]), np.array([1.0, 4.0]), epsilon=0.01)
    assert np.allclose(learner.theta, [0.0, 2.0], atol=1e-3)
    assert learner.status.log_volume == pytest.approx(math.log(math.pi * 1.0 * 2.0), abs=1e-2)
    assert learner.bound == math.ceil(math.log(8.0 / (math.pi * 1e-4)) / math.log(2.0))
    volumes = [learner.status.log_volume]
    rng = np.random.default_rng(0)
    for _ in range(6):  # cuts through the current centre, in random directions
        h = rng.normal(size=2)
        learner.add_cut(h, float(h @ learner.theta))
        learner.recentre()
        volumes.append(learner.status.log_volume)
    assert all(later < earlier for earlier, later in zip(volumes, volumes[1:], strict=False))
    assert np.mean(np.diff(volumes)) <= math.log(1 - 1 / 2) + 0.1  # on average about the (1 - 1/r) rate, r = 2


def test_cuts_that_can_no_longer_cut_the_polytope_are_dropped_and_the_centre_stays():
    from robofeedback.methods.safe_mpc.cutting_plane import max_volume_ellipsoid

    r = 5
    learner = CuttingPlaneLearner(-np.ones(r), np.ones(r), epsilon=1e-4)
    rng = np.random.default_rng(3)
    for _ in range(30):
        h = rng.normal(size=r)
        learner.add_cut(h, float(h @ learner.theta))
        learner.recentre()
        A, b = learner._halfspaces()
        scale = np.linalg.norm(A, axis=1)
        d, E, _ = max_volume_ellipsoid(A / scale[:, None], b / scale)  # every row
        assert np.linalg.norm(np.linalg.solve(E, learner.theta - d)) < 1e-2  # the same centre, in its own units
    assert learner.status.rows < len(A)  # the box's faces, at least, are far away by now


def test_the_mve_of_a_long_thin_polytope_is_found_to_tolerance():
    """Widths from 1 to 1000 (the drone game's polytopes are as uneven): started from the Chebyshev centre, the
    primal-dual steps stalled with the log-volume 5.6 short; from the analytic centre they converge."""
    import cvxpy as cp

    from robofeedback.methods.safe_mpc.cutting_plane import max_volume_ellipsoid

    r, rng = 10, np.random.default_rng(0)
    widths = np.geomspace(1, 1000, r)
    A = np.vstack([np.eye(r), -np.eye(r), rng.normal(size=(10, r))])
    b = np.r_[widths, widths, 0.3 * np.abs(A[2 * r :]) @ widths]
    scale = np.linalg.norm(A, axis=1)
    A, b = A / scale[:, None], b / scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping short of the tolerances warns
        d, E, log_det = max_volume_ellipsoid(A, b)
    C, c = cp.Variable((r, r), PSD=True), cp.Variable(r)
    cp.Problem(cp.Maximize(cp.log_det(C)), [cp.norm2(C @ A.T, axis=0) + A @ c <= b]).solve(solver="CLARABEL")
    assert log_det == pytest.approx(np.linalg.slogdet(C.value)[1], abs=1e-3)
    assert np.linalg.norm(np.linalg.solve(E, d - c.value)) < 1e-2  # the same centre, in the ellipsoid's units


def test_the_primal_dual_mve_solver_agrees_with_cvxpy_and_finds_empty_polytopes():
    from robofeedback.methods.safe_mpc.cutting_plane import max_volume_ellipsoid

    rng = np.random.default_rng(1)
    r = 4
    A = np.vstack([np.eye(r), -np.eye(r), rng.normal(size=(8, r))])
    b = np.r_[np.ones(2 * r), rng.uniform(0.1, 0.6, 8)]
    primal_dual = CuttingPlaneLearner(-np.ones(r), np.ones(r), epsilon=1e-3)
    reference = CuttingPlaneLearner(-np.ones(r), np.ones(r), epsilon=1e-3, solver="cvxpy")
    for learner in (primal_dual, reference):
        for h, c in zip(A[2 * r :], b[2 * r :], strict=True):
            learner.add_cut(h, c)
        learner.recentre()
    assert np.allclose(primal_dual.theta, reference.theta, atol=1e-3)
    assert primal_dual.status.log_volume == pytest.approx(reference.status.log_volume, abs=1e-3)
    scale = np.linalg.norm(A, axis=1)
    d, E, _ = max_volume_ellipsoid(A / scale[:, None], b / scale)
    assert np.all(np.linalg.norm(A @ E, axis=1) + A @ d <= b)  # the ellipsoid lies inside the polytope
    assert max_volume_ellipsoid(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([-1.0, -1.0])) is None  # x<=-1, x>=1


def test_a_violation_cuts_away_every_theta_that_calls_the_state_safe(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    learner = CuttingPlaneLearner(-np.ones(2), np.ones(2), epsilon=1e-3, store=store, run="v")
    # c(x) = -0.5 + theta^T psi with psi(x) = [1, 0]: seen unsafe, so theta_1 >= 0.5
    status = learner.violation(np.array([1.0, 0.0]), -0.5, state=np.array([0.3, 0.2]), t=4)
    assert not status.misspecified and 0.5 < learner.theta[0] < 1.0 and learner.corrections == 0
    assert learner.theta[0] == pytest.approx(0.75, abs=1e-2) and learner.theta[1] == pytest.approx(0.0, abs=1e-2)
    (label,) = store.labels(kind="violation", run="v")
    assert label.payload["t"] == 4 and label.payload["cut"] == {"h": [-1.0, -0.0], "b": -0.5}
    replayed = CuttingPlaneLearner.replay(store, "v", low=-np.ones(2), high=np.ones(2), epsilon=1e-3)
    assert np.allclose(replayed.theta, learner.theta)
    # where no theta in the box can call the state unsafe, the space is empty: misspecified, with the reason
    status = learner.violation(np.array([0.0, 1.0]), -2.0)
    assert status.misspecified and "seen in an unsafe state" in status.reason
