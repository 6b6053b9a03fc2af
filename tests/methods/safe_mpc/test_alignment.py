"""The alignment loop: convergence within the bound, declared misspecification, the simulated human, and
the `robofeedback safe-mpc` command."""

import numpy as np
import pytest

from robofeedback.cli import main
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.methods.safe_mpc.alignment import SimulatedHuman, align, summarize
from robofeedback.methods.safe_mpc.cutting_plane import CuttingPlaneLearner
from robofeedback.methods.safe_mpc.mpc import SafeMPC


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


def test_cli_safe_mpc(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["safe-mpc", "--game", "pendulum", "--simulated-human", "--episodes", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "success" in text and "corrections" in text and (out / "trial.json").exists()
    nowhere = tmp_path / "nope"
    assert main(["safe-mpc", "--game", "nope", "--simulated-human", "--out", str(nowhere)]) == 2
    assert "nope" in capsys.readouterr().err and not nowhere.exists()  # nothing made for a game that is not there
