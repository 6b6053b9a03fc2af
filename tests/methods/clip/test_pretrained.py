"""A CLIP reward saved as a folder: the loaded reward scores as the saved one, open_clip alone opens the folder, and
a folder of another kind is refused with a clear error."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from robofeedback.methods.clip.model import ClipReward
from robofeedback.protocols import Transitions
from robofeedback.rewards.preference import PreferenceReward

GOAL = "the gripper touches the green target"


def frames_batch(frames):
    n = len(frames)
    return Transitions(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros((n, 1)), [{} for _ in range(n)], frames)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A normalising reward that has scored a batch (so its running statistics matter), saved, and the next frames."""
    frames = np.random.default_rng(0).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    reward = ClipReward(GOAL, baseline="a robot arm", alpha=0.5, scale=2.0, normalize=True, every=2, device="cpu")
    reward(frames_batch(frames[:4]))
    folder = reward.save_pretrained(tmp_path_factory.mktemp("clip") / "reward", card={"env": "panda:PandaReach-v3"})
    return reward, folder, frames[4:]


def test_the_loaded_reward_scores_as_the_saved_one(saved):
    reward, folder, frames = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    loaded = ClipReward.from_pretrained(folder, device="cpu")
    assert (loaded.reward_every, loaded.scale, loaded.source) == (2, 2.0, {"model": "mini", "pretrained": None})
    np.testing.assert_array_equal(loaded(frames_batch(frames)), reward(frames_batch(frames)))
    card = (folder / "README.md").read_text()
    assert "`the gripper touches the green target`" in card and "panda:PandaReach-v3" in card
    assert 'open_clip.create_model_and_transforms("local-dir:' in card


def test_open_clip_alone_opens_the_folder(saved):
    import open_clip

    reward, folder, frames = saved
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        goal = F.normalize(model.encode_text(tokenizer([GOAL])), dim=-1)[0]
        pixels = torch.stack([preprocess(Image.fromarray(frame)) for frame in frames])
        images = F.normalize(model.encode_image(pixels), dim=-1)
    torch.testing.assert_close(goal, reward.similarity.g)
    torch.testing.assert_close(images, reward.embed_images(frames))


def test_a_folder_of_another_kind_is_refused(saved, tmp_path):
    _, folder, _ = saved
    with pytest.raises(ValueError, match="not a saved CLIP reward: it has no config.json, open_clip_config.json"):
        ClipReward.from_pretrained(tmp_path)
    preference = PreferenceReward(obs_dim=2, act_dim=1, hidden=8, layers=1).save_pretrained(tmp_path / "preference")
    with pytest.raises(ValueError, match="not a saved CLIP reward: it has no open_clip_config.json"):
        ClipReward.from_pretrained(preference)
    newer = tmp_path / "newer"
    newer.mkdir()
    for path in folder.iterdir():
        (newer / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99; this robofeedback reads version 1"):
        ClipReward.from_pretrained(newer)
    (newer / "config.json").write_text(json.dumps({**config, "format": "robofeedback-preference-reward"}))
    with pytest.raises(ValueError, match="is not a robofeedback CLIP reward \\(format 'robofeedback-preference"):
        ClipReward.from_pretrained(newer)
