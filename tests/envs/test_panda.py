"""panda-gym tasks: the camera sees what it projects, factors measure distances, observations kept or flattened."""

import numpy as np
import pytest
from gymnasium import spaces
from helpers import pixel

from robofeedback.envs import make


@pytest.mark.parametrize("body", ["object", "target"])
def test_panda_camera_projects_bodies_onto_their_pixels(body):
    env = make("panda:PandaPush-v3", seed=0, render_size=(200, 150))
    env.reset()
    sim = env.unwrapped.sim
    seg = env.segmentation()
    assert seg[pixel(env, sim.get_base_position(body))] == sim._bodies_idx[body]


def test_panda_agent_pos_is_the_gripper_seen_by_the_camera():
    env = make("panda:PandaReach-v3", seed=0, render_size=160)
    _, info = env.reset()
    np.testing.assert_allclose(info["agent_pos"], env.unwrapped.robot.get_ee_position())
    seg = env.segmentation()
    assert seg[pixel(env, info["agent_pos"])] == env.unwrapped.sim._bodies_idx["panda"]


def test_panda_factors_measure_distances_and_progress():
    env = make("panda:PandaPush-v3", seed=0)
    env.reset()
    task = env.unwrapped.task
    sim = env.unwrapped.sim
    before = np.linalg.norm(sim.get_base_position("object") - task.goal)
    _, _, _, _, info = env.step(env.action_space.sample())
    after = np.linalg.norm(sim.get_base_position("object") - task.goal)
    assert info["factors"]["object_to_target"] == pytest.approx(after)
    assert info["factors"]["progress"] == pytest.approx(before - after)
    ee = env.unwrapped.robot.get_ee_position()
    assert info["factors"]["ee_to_object"] == pytest.approx(np.linalg.norm(ee - sim.get_base_position("object")))


def test_panda_observations_kept_as_dict_or_flattened():
    kept = make("panda:PandaReach-v3", seed=0)
    assert isinstance(kept.observation_space, spaces.Dict)
    obs, _ = kept.reset()
    flat = make("panda:PandaReach-v3", seed=0, flatten=True)
    assert isinstance(flat.observation_space, spaces.Box) and flat.observation_space.shape == (12,)
    flat_obs, _ = flat.reset()
    assert flat.observation_space.contains(flat_obs)
    np.testing.assert_allclose(flat_obs, spaces.flatten(kept.observation_space, obs), rtol=1e-6)


def test_panda_episodes_can_run_on_after_success():
    def steps_after_reaching(terminate):
        env = make("panda:PandaReach-v3", seed=0, terminate_on_success=terminate)
        env.reset()
        goal = env.unwrapped.task.goal
        for step in range(1, 51):
            action = np.clip((goal - env.unwrapped.robot.get_ee_position()) * 10, -1, 1)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return step, info["success"], terminated
        return None

    reached_at, success, terminated = steps_after_reaching(True)
    assert success and terminated and reached_at < 50
    assert steps_after_reaching(False) == (50, True, False)
