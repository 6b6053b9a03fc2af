"""Fixtures the app's test modules share: clips of a panda reach episode, each with its video file."""

import pytest
from helpers import TASK

from robofeedback.data import collect, write_video
from robofeedback.envs import make


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Eight 10-step segments of a panda reach episode, each with its video file."""
    folder = tmp_path_factory.mktemp("clips")
    env = make(TASK, seed=0, render_size=(160, 120))
    (trajectory,) = collect(env, None, n_episodes=1, render=True, seed=3)
    env.close()
    segments = [trajectory.segment(i, i + 10) for i in range(0, 40, 5)]
    videos = [str(write_video(s.frames, folder / f"{i}.mp4", fps=10)) for i, s in enumerate(segments)]
    return segments, videos
