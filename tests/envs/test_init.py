"""``robofeedback.envs.make``: the info contract of every family, seeding, unknown specs, missing backends,
families registered by others and bad options."""

import sys

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


def test_clone_has_the_same_options():
    env = make("metaworld:reach", seed=0, render_size=(64, 48), max_episode_steps=30)
    twin = clone(env, seed=5)
    assert twin.spec_name == env.spec_name and (twin.render_width, twin.render_height) == (64, 48)
    assert twin.unwrapped.max_path_length == 30
