"""MuJoCo's headless views: EGL contexts freed before EGL shuts down at exit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", RENDER_AND_EXIT, how],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
