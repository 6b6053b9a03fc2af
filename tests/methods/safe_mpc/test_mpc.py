"""The barrier MPC: the plan and the gradients a correction's cut needs."""

import math

import numpy as np
import pytest

from robofeedback.envs import make
from robofeedback.methods.safe_mpc.mpc import SafeMPC


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
