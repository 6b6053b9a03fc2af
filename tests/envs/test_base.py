"""What every robofeedback env does: frames captured into info, and frames rendered from recorded states."""

import numpy as np
import pytest

from robofeedback.envs import make


def test_frame_capture_puts_frames_in_info():
    env = make("panda:PandaReach-v3", seed=0, render_size=48)
    env.reset()
    assert "frame" not in env.step(env.action_space.sample())[4]
    env.set_frame_capture(True)
    info = env.step(env.action_space.sample())[4]
    assert info["frame"].shape == (48, 48, 3)


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
