import math
import warnings

import numpy as np
import pytest

from robofeedback.cli import main
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.safety.alignment import SimulatedHuman, align, summarize
from robofeedback.safety.cutting_plane import CuttingPlaneLearner, correction_cut
from robofeedback.safety.mpc import SafeMPC


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
    from robofeedback.safety.cutting_plane import max_volume_ellipsoid

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

    from robofeedback.safety.cutting_plane import max_volume_ellipsoid

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
    from robofeedback.safety.cutting_plane import max_volume_ellipsoid

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


def test_the_mpc_gives_the_plan_and_the_gradients_a_cut_needs():
    env = make("safety:pendulum", seed=0, render_size=64)
    env.reset(seed=0)
    game = env.game
    mpc = SafeMPC(game.model)
    plan = mpc.plan(game.state, game.theta_true, game.goal)
    assert plan.converged and plan.u.shape == (mpc.N, 1) and plan.x.shape == (mpc.N + 1, 2) and plan.g < 0
    grads = mpc.gradients(game.state, plan.u, game.goal)
    assert grads["dphi"].shape == (2, mpc.N) and grads["grad_J"].shape == (mpc.N,)
    # the plan minimises the barrier objective under the theta it was planned with: its gradient vanishes
    grad_b = mpc.barrier_gradient(game.state, plan.u, game.theta_true, game.goal)
    assert np.linalg.norm(grad_b) < 1e-3 * max(1.0, np.linalg.norm(grads["grad_J"]))
    # and the analytic barrier gradient matches finite differences of the objective
    u = plan.u.reshape(-1) + 0.1
    eps = 1e-6
    for i in (0, 3):
        step = np.zeros_like(u)
        step[i] = eps

        def barrier(v):
            g = mpc.constraint(game.state, v, game.theta_true)
            cost = float(mpc._cost(game.state, v, game.goal)[0])
            return cost - mpc.gamma * math.log(-g)

        numeric = (barrier(u + step) - barrier(u - step)) / (2 * eps)
        assert mpc.barrier_gradient(game.state, u, game.theta_true, game.goal)[i] == pytest.approx(numeric, rel=1e-4)


def test_the_pendulum_converges_within_the_bound_and_corrections_are_stored(tmp_path):
    env = make("safety:pendulum", seed=0, render_size=64)
    store = FeedbackStore(tmp_path / "f.db")
    trial = align(env, seed=0, episodes=30, store=store, run="pendulum")
    assert trial.success and not trial.misspecified and trial.violations < trial.attempts
    assert 0 < trial.corrections <= trial.bound
    assert trial.theta_error < 0.05
    labels = store.labels(kind="correction", run="pendulum")
    assert len(labels) == trial.corrections and {lb.source for lb in labels} == {"script:simulated-human"}
    assert len(store.labels(kind="violation", run="pendulum")) == trial.violations
    assert 0 < trial.first_success <= trial.attempts and trial.first_success_corrections <= trial.corrections
    replayed = CuttingPlaneLearner.replay(
        store,
        "pendulum",
        low=env.game.model.theta_box[0],
        high=env.game.model.theta_box[1],
        epsilon=env.game.model.epsilon,
    )
    assert np.allclose(replayed.theta, trial.theta, atol=1e-3)


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


@pytest.mark.parametrize("game", ["drone", "arm"])
def test_the_misspecified_drone_and_arm_are_declared(game):
    env = make(f"safety:{game}", seed=0, render_size=64, misspecified=True)
    trial = align(env, seed=0, episodes=10)
    assert trial.misspecified and not trial.success and trial.violations >= 1 and "unsafe state" in trial.reason


def test_the_misspecified_pendulum_is_declared_not_looped():
    env = make("safety:pendulum", seed=0, render_size=64, misspecified=True)
    trial = align(env, seed=1, episodes=40)
    assert trial.misspecified and not trial.success
    assert trial.corrections <= trial.bound + 1 and trial.reason
    assert summarize([trial])["declared_misspecified"] == 1


def test_the_simulated_human_corrects_only_near_the_boundary():
    env = make("safety:pendulum", seed=0, render_size=64)
    env.reset(seed=0)
    game = env.game
    mpc = SafeMPC(game.model)
    human = SimulatedHuman(game.theta_true, p=1.0)
    plan = mpc.plan(game.state, game.theta_true, game.goal)
    assert human.direction(mpc, game.state, game.goal, plan.u) is None  # the true constraint's own plan
    low, high = game.model.theta_box
    for _ in range(3):  # the centre of the box believes fast is safe: its plans soon come near the boundary
        plan = mpc.plan(game.state, (low + high) / 2, game.goal)
        a = human.direction(mpc, game.state, game.goal, plan.u)
        env.step(plan.u[0])
        if a is not None:
            break
    assert a is not None and a.shape == (1,) and np.linalg.norm(a) == pytest.approx(1.0)


@pytest.mark.parametrize("game", ["pendulum", "drone", "arm"])
def test_games_keep_the_info_contract_and_draw_the_plan(game):
    env = make(f"safety:{game}", seed=0, render_size=96)
    obs, info = env.reset(seed=0)
    low, high = env.game.model.theta_box
    assert np.all((env.game.theta_true >= low) & (env.game.theta_true <= high))
    _, _, _, _, info = env.step(env.action_space.sample() * 0)
    assert set(info["factors"]) == {"goal_distance", "ctrl_cost", "constraint"} and "success" in info
    uv, depth = env.camera.project(info["agent_pos"])
    assert np.all(np.isfinite(uv)) and 0 <= uv[0] < 96 and 0 <= uv[1] < 96
    plain = env.render()
    env.game.plan = np.repeat(env.game.state[None], 5, axis=0) + np.linspace(0, 0.3, 5)[:, None]
    drawn = env.render()
    assert plain.shape == (96, 96, 3) and np.any(plain != drawn)
    bad = make(f"safety:{game}", seed=0, render_size=32, misspecified=True)
    low, high = bad.game.model.theta_box
    assert not np.all((bad.game.theta_true >= low) & (bad.game.theta_true <= high))


def test_cli_safe_mpc(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["safe-mpc", "--game", "pendulum", "--simulated-human", "--episodes", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "success" in text and "corrections" in text and (out / "trial.json").exists()
    nowhere = tmp_path / "nope"
    assert main(["safe-mpc", "--game", "nope", "--simulated-human", "--out", str(nowhere)]) == 2
    assert "nope" in capsys.readouterr().err and not nowhere.exists()  # nothing made for a game that is not there
