"""PyBullet locomotion: the camera follows the torso, the factors add up to the env's reward."""

import pytest
from helpers import pixel

from robofeedback.envs import make


@pytest.mark.parametrize("env_id", ["AntBulletEnv-v0", "HopperBulletEnv-v0"])
def test_bullet_camera_follows_the_torso(env_id):
    env = make(f"bullet:{env_id}", seed=0, render_size=120)
    env.reset()
    for _ in range(5):
        _, _, _, _, info = env.step(env.action_space.sample())
    seg = env.segmentation()
    robot_ids = {int(p.bodies[p.bodyIndex]) for p in env.unwrapped.robot.parts.values()}
    assert seg[pixel(env, info["agent_pos"])] in robot_ids


def test_bullet_factors_add_up_to_the_env_reward():
    env = make("bullet:HalfCheetahBulletEnv-v0", seed=0)
    env.reset()
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        f = info["factors"]
        total = f["alive"] + f["progress"] - f["electricity"] - f["joints_at_limit"] - f["feet_collision"]
        assert total == pytest.approx(reward, abs=1e-9)
