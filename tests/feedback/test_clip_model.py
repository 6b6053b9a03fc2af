"""The shared CLIP model: the goal-baseline regularised similarity and clear errors for missing weights."""

import pytest
import torch

from robofeedback.feedback.clip_model import ClipModel, clip_reward, load_clip, regularizer


@pytest.mark.parametrize(("alpha", "expected"), [(0.0, 0.6), (0.5, 0.63), (1.0, 0.64)])
def test_goal_baseline_formula_on_a_hand_computed_example(alpha, expected):
    # g = (1, 0), b = (0, 1), x = (0.6, 0.8): d = (1, -1), P_d (x - g) = (-0.6, 0.6), x - g = (-0.4, 0.8).
    # alpha 0: 1 - (0.16 + 0.64) / 2 = x.g = 0.6; alpha 1: 1 - 0.72 / 2; alpha 0.5: 1 - (0.25 + 0.49) / 2.
    g, b, x = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([[0.6, 0.8]])
    assert clip_reward(x, g, regularizer(g, b, alpha)).item() == pytest.approx(expected, abs=1e-6)


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBOFEEDBACK_ASSETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="scripts/train_mini_clip.py"):
        ClipModel()
    with pytest.raises(FileNotFoundError, match="neither an open_clip tag"):
        load_clip("ViT-B-32", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="needs pretrained=.*laion2b"):
        load_clip("ViT-B-32")
    with pytest.raises(ValueError, match="unknown CLIP model"):
        load_clip("ViT-Q-99")
