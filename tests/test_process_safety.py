"""Crashes that only show in a fresh process, each checked in one."""

import subprocess
import sys

SCRIPT = """
from robofeedback.envs import make
env = make("metaworld:reach", render_size=(64, 48))
env.reset()
assert env.render().mean() > 0
from stable_baselines3 import SAC
SAC("MlpPolicy", "Pendulum-v1")  # builds torch optimizers, which import triton
print("alive")
"""


def test_mujoco_rendering_then_torch_optimizers_does_not_crash():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alive" in result.stdout
