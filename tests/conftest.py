"""Shared test settings: small sizes, real simulators, nothing downloaded."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def tiny_train_config():
    """Training settings that exercise every callback in a few hundred steps."""
    return {
        "eval_every": 200,
        "eval_episodes": 2,
        "checkpoint_every": 200,
        "video_episodes": 1,
        "sac": {"learning_starts": 100, "batch_size": 32},
        "td3": {"learning_starts": 100, "batch_size": 32},
        "ppo": {"n_steps": 128, "batch_size": 32, "n_epochs": 1},
    }
