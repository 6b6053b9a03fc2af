"""Any Gymnasium id gets the info contract; Gymnasium's MuJoCo envs a camera and factors too."""

import numpy as np
import pytest

from robofeedback.envs import make


def test_any_gymnasium_id_gets_the_info_contract():
    with pytest.warns(UserWarning, match="agent_pos"):
        env = make("Pendulum-v1", seed=0, render_size=32)
    env.reset()
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert info["env_reward"] == reward and np.isnan(info["agent_pos"]).all()
    assert set(info["factors"]) == {"ctrl_cost"}
    assert env.render().shape == (32, 32, 3)
    with pytest.raises(NotImplementedError, match="camera"):
        _ = env.camera


def test_gymnasium_mujoco_env_gets_a_camera_and_factors():
    env = make("HalfCheetah-v5", seed=0, render_size=64)
    env.reset()
    _, _, _, _, info = env.step(env.action_space.sample())
    assert {"reward_forward", "reward_ctrl", "x_velocity"} <= set(info["factors"])
    assert np.isfinite(info["agent_pos"]).all()
    assert env.camera.visible(info["agent_pos"][None])[0]
