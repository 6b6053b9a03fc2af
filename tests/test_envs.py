import os
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
from gymnasium import spaces

from robofeedback import envs
from robofeedback.envs import BackendNotInstalledError, UnknownEnvError, available, clone, make, register_family
from robofeedback.envs.generic import GymEnv

PANDA = ["PandaReach-v3", "PandaPush-v3", "PandaSlide-v3", "PandaPickAndPlace-v3", "PandaStack-v3"]
METAWORLD = ["reach", "push", "pick-place", "button-press-topdown", "drawer-open", "door-open", "window-open"]
BULLET = ["AntBulletEnv-v0", "HalfCheetahBulletEnv-v0", "HopperBulletEnv-v0", "Walker2DBulletEnv-v0"]
SPECS = [f"panda:{x}" for x in PANDA] + [f"metaworld:{x}" for x in METAWORLD] + [f"bullet:{x}" for x in BULLET]


@pytest.mark.parametrize("spec", SPECS)
def test_info_contract_and_rendering(spec):
    env = make(spec, seed=1, render_size=(96, 64))
    obs, info = env.reset()
    assert info["agent_pos"].shape == (3,)
    for _ in range(3):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
    assert info["env_reward"] == reward
    assert info["agent_pos"].shape == (3,) and np.isfinite(info["agent_pos"]).all()
    assert set(info["factors"]) == set(env.factor_info)
    assert all(isinstance(v, float) and np.isfinite(v) for v in info["factors"].values())
    assert info["factors"]["ctrl_cost"] == pytest.approx(float(np.sum(np.asarray(action, dtype=np.float64) ** 2)))
    if spec.startswith("bullet:"):
        assert "success" not in info
    else:
        assert isinstance(info["success"], bool)
    frame = env.render()
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8 and frame.std() > 5
    assert (env.camera.width, env.camera.height) == (96, 64)
    env.close()


def _pixel(env, point):
    uv, depth = env.camera.project(np.asarray(point))
    assert depth > 0
    return int(round(uv[1])), int(round(uv[0]))


@pytest.mark.parametrize("body", ["object", "target"])
def test_panda_camera_projects_bodies_onto_their_pixels(body):
    env = make("panda:PandaPush-v3", seed=0, render_size=(200, 150))
    env.reset()
    sim = env.unwrapped.sim
    seg = env.segmentation()
    assert seg[_pixel(env, sim.get_base_position(body))] == sim._bodies_idx[body]


def test_panda_agent_pos_is_the_gripper_seen_by_the_camera():
    env = make("panda:PandaReach-v3", seed=0, render_size=160)
    _, info = env.reset()
    np.testing.assert_allclose(info["agent_pos"], env.unwrapped.robot.get_ee_position())
    seg = env.segmentation()
    assert seg[_pixel(env, info["agent_pos"])] == env.unwrapped.sim._bodies_idx["panda"]


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


@pytest.mark.parametrize("env_id", ["AntBulletEnv-v0", "HopperBulletEnv-v0"])
def test_bullet_camera_follows_the_torso(env_id):
    env = make(f"bullet:{env_id}", seed=0, render_size=120)
    env.reset()
    for _ in range(5):
        _, _, _, _, info = env.step(env.action_space.sample())
    seg = env.segmentation()
    robot_ids = {int(p.bodies[p.bodyIndex]) for p in env.unwrapped.robot.parts.values()}
    assert seg[_pixel(env, info["agent_pos"])] in robot_ids


def test_bullet_factors_add_up_to_the_env_reward():
    env = make("bullet:HalfCheetahBulletEnv-v0", seed=0)
    env.reset()
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        f = info["factors"]
        total = f["alive"] + f["progress"] - f["electricity"] - f["joints_at_limit"] - f["feet_collision"]
        assert total == pytest.approx(reward, abs=1e-9)


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


@pytest.mark.parametrize("spec", ["panda:PandaPush-v3", "metaworld:push", "bullet:HopperBulletEnv-v0"])
def test_same_seed_same_episode(spec):
    def run(seed):
        env = make(spec, seed=seed)
        obs, _ = env.reset()
        first = spaces.flatten(env.observation_space, obs) if isinstance(obs, dict) else obs
        rewards = [env.step(env.action_space.sample())[1] for _ in range(5)]
        return np.concatenate([first, rewards])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


@pytest.mark.parametrize("spec", ["panda:PandaReach-v3", "metaworld:reach", "bullet:HopperBulletEnv-v0"])
def test_later_episodes_are_reproducible_too(spec):
    def first_obs_of_episodes(seed):
        env = make(spec, seed=seed)
        starts = []
        for _ in range(3):
            obs, _ = env.reset()
            starts.append(spaces.flatten(env.observation_space, obs) if isinstance(obs, dict) else obs)
        return np.concatenate(starts)

    np.testing.assert_array_equal(first_obs_of_episodes(1), first_obs_of_episodes(1))


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


RENDER_AND_EXIT = """
import sys
from robofeedback.envs import make

envs = [make(spec, seed=0, render_size=32) for spec in ("metaworld:drawer-open", "HalfCheetah-v5")]
for env in envs:
    env.reset()
    env.render()
envs[0].segmentation()
if sys.argv[1] == "close":
    for env in envs:
        env.close()
"""


@pytest.mark.parametrize("how", ["close", "exit"])
def test_mujoco_rendering_exits_without_egl_errors(how):
    """MuJoCo's EGL contexts are freed before MuJoCo terminates the EGL display at exit: a process that renders and
    exits, with its envs closed or left open, prints no traceback (``eglDestroyContext``: ``EGL_NOT_INITIALIZED``)."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", RENDER_AND_EXIT, how],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


def test_frame_capture_puts_frames_in_info():
    env = make("panda:PandaReach-v3", seed=0, render_size=48)
    env.reset()
    assert "frame" not in env.step(env.action_space.sample())[4]
    env.set_frame_capture(True)
    info = env.step(env.action_space.sample())[4]
    assert info["frame"].shape == (48, 48, 3)


def test_clone_has_the_same_options():
    env = make("metaworld:reach", seed=0, render_size=(64, 48), max_episode_steps=30)
    twin = clone(env, seed=5)
    assert twin.spec_name == env.spec_name and (twin.render_width, twin.render_height) == (64, 48)
    assert twin.unwrapped.max_path_length == 30


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


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("panda:PandaRech-v3", "Did you mean PandaReach-v3"),
        ("metaworld:drawer-opn", "drawer-open"),
        ("bullet:Ant", "AntBulletEnv-v0"),
        ("mujoco:Ant-v5", "families are"),
        ("NoSuchEnv-v0", "robofeedback envs"),
        ("", "non-empty"),
    ],
)
def test_unknown_specs_name_the_valid_choices(spec, expected):
    with pytest.raises(UnknownEnvError, match=expected):
        make(spec)


def test_missing_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'robofeedback\[metaworld\]'"):
        make("metaworld:reach")
    assert available()["metaworld"]["installed"] is False


def test_families_registered_by_others_are_made_and_listed(monkeypatch):
    monkeypatch.setattr(envs, "_families", dict(envs._families))
    register_family("toy", GymEnv, lambda: ["Pendulum-v1"], "gym", "one Gymnasium task")
    with pytest.warns(UserWarning, match="agent_pos"):
        env = make("toy:Pendulum-v1", seed=0, render_size=32)
    env.reset()
    assert isinstance(env, GymEnv) and env.spec_name == "Pendulum-v1" and env.render().shape == (32, 32, 3)
    with pytest.raises(UnknownEnvError, match="Did you mean Pendulum-v1"):
        make("toy:Pendulum-v0")
    listed = available()
    assert listed["toy"]["ids"] == ["Pendulum-v1"] and listed["safety"]["ids"] == ["pendulum", "drone", "arm"]
    with pytest.raises(ValueError, match="two env families are named 'toy'"):
        register_family("toy", GymEnv, lambda: [], "gym", "another")
    with pytest.raises(ValueError, match="without ':'"):
        register_family("a:b", GymEnv, lambda: [], "gym", "a colon")


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="render_size"):
        make("panda:PandaReach-v3", render_size=(0, 10))
    with pytest.raises(ValueError, match="unknown camera settings"):
        make("panda:PandaReach-v3", camera={"zoom": 2})
    with pytest.raises(ValueError, match="unknown camera 'nope'"):
        make("metaworld:reach", camera="nope")
    with pytest.raises(ValueError, match="max_episode_steps"):
        make("metaworld:reach", max_episode_steps=900)


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


@pytest.mark.parametrize(
    "spec, kwargs",
    [
        ("panda:PandaPush-v3", {}),
        ("metaworld:drawer-open", {"max_episode_steps": 30}),
        ("bullet:HopperBulletEnv-v0", {}),
    ],
)
def test_frames_rendered_from_recorded_states_equal_the_live_frames(spec, kwargs):
    """Render on query: the state recorded at each step, restored in another env of the same spec (other seed,
    other episode), renders the frame the training env showed, pixel for pixel; the camera of a family that
    follows the agent is placed from the recorded position."""
    env = make(spec, seed=0, render_size=(80, 60), **kwargs)
    env.set_state_capture(True)
    env.set_frame_capture(True)
    _, info = env.reset(seed=0)
    rows = [(info["sim_state"], info["agent_pos"], info["frame"])]
    for _ in range(12):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        rows.append((info["sim_state"], info["agent_pos"], info["frame"]))
        if terminated or truncated:  # a hopper may fall
            break
    assert len(rows) > 3
    other = make(spec, seed=7, render_size=(80, 60), **kwargs)
    other.reset(seed=7)
    assert not np.array_equal(other.render(), rows[-1][2])  # a different scene before its state is restored
    for state, position, frame in rows:
        np.testing.assert_array_equal(other.render_state(state, position), frame)
    with pytest.raises(ValueError, match="does not fit"):
        other.set_sim_state(rows[0][0][:-1])
