"""MetaWorld tasks: the camera sees what it projects, placements randomized unless asked not to, episode lengths."""

import mujoco
import numpy as np
import pytest

from robofeedback.envs import make


@pytest.mark.parametrize("task", ["push", "drawer-open"])
@pytest.mark.parametrize("geom_name", ["objGeom", "leftpad_geom"])  # the puck or drawer handle; a gripper pad
def test_metaworld_camera_projects_geoms_onto_their_pixels(task, geom_name):
    env = make(f"metaworld:{task}", seed=0, render_size=(160, 120))
    env.reset()
    geom = env.unwrapped.data.geom(geom_name)
    seg = env.segmentation()
    ys, xs = np.nonzero((seg[..., 0] == geom.id) & (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM))
    assert len(xs) > 10
    uv, _ = env.camera.project(geom.xpos)
    # a small convex part's visible pixels centre on its projected centre
    assert abs(xs.mean() - uv[0]) < 1.0 and abs(ys.mean() - uv[1]) < 1.0


def test_metaworld_randomizes_placements_unless_asked_not_to():
    env = make("metaworld:reach", seed=0)
    goals = {tuple(np.round(env.reset()[0][36:39], 6)) for _ in range(3)}
    assert len(goals) == 3
    fixed = make("metaworld:reach", seed=0, randomize=False)
    goals = {tuple(np.round(fixed.reset()[0][36:39], 6)) for _ in range(3)}
    assert len(goals) == 1


def test_metaworld_episode_length_is_configurable():
    env = make("metaworld:reach", seed=0, max_episode_steps=20)
    env.reset()
    truncated, steps = False, 0
    while not truncated:
        truncated = env.step(env.action_space.sample())[3]
        steps += 1
    assert steps == 20
