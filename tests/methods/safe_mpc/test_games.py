"""The safety games: the info contract, the drawn plan, the misspecified variant, and the `safety` env family."""

import subprocess
import sys

import numpy as np
import pytest

from robofeedback.envs import make


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


def test_the_safety_family_is_made_before_any_method_is_imported():
    """robofeedback.envs imports no method: an unknown family loads the registry's methods, and safe MPC's package
    registers ``safety``; the env list and the train-config family know it too."""
    code = (
        "import sys\n"
        "from robofeedback import envs\n"
        "assert not [m for m in sys.modules if m.startswith('robofeedback.methods')]\n"
        "env = envs.make('safety:drone', seed=0, render_size=32)\n"
        "assert type(env).__module__ == 'robofeedback.methods.safe_mpc.games', type(env)\n"
        "assert envs.available()['safety']['ids'] == ['pendulum', 'drone', 'arm']\n"
        "from robofeedback.rl.train import family_of\n"
        "assert family_of('safety:arm') == 'safety'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
