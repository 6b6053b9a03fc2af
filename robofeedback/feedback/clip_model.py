"""CLIP models for rewards and judges: loading and saving an open_clip model, embedding frames and prompts, and the
goal-baseline regularised similarity of frames to a language goal (VLM-RM's reward, which the CLIP judges also score
with).

Rocamonde et al. 2023, "Vision-Language Models are Zero-Shot Reward Models for Reinforcement Learning"
(arXiv 2310.12921), Eq. 2 and Definition 1. With x the normalised image embedding of the frame, g the
normalised text embedding of the goal and b that of the baseline, the goal-baseline regularised similarity is

    R_CLIP-Reg(s) = 1 - 1/2 * || alpha * proj_L x + (1 - alpha) * x - g ||^2,
    proj_L x = g + P_d (x - g),   d = g - b,   P_d = d d^T / ||d||^2,

i.e. ``1 - 1/2 ||(x - g) M||^2`` with ``M = alpha P_d + (1 - alpha) I``. alpha = 0 is the plain cosine
similarity x.g; alpha = 1 keeps only the component of x - g along the baseline-to-goal direction.

The model is any open_clip model (a name with a ``pretrained`` tag or checkpoint file, or a local
open_clip folder); the default is the project's mini CLIP in ``assets/mini_clip``, trained on panda-gym and
MetaWorld renders by ``scripts/train_mini_clip.py``. Frames should be rendered at the model's input size
(``ClipModel.image_size``; ``train`` does this), so preprocessing is only a normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robofeedback.config import assets_dir

MINI_CLIP = "mini"
PRECISIONS = ("fp32", "bf16")


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _import_open_clip():
    try:
        import open_clip
    except ImportError:
        raise ImportError("CLIP models need open_clip: pip install 'robofeedback[clip]'") from None
    return open_clip


def load_clip(model: str = MINI_CLIP, pretrained: str | None = None, device: str = "cpu"):
    """An open_clip model in eval mode and its tokenizer.

    ``model`` is ``"mini"`` (the shipped mini CLIP), a folder holding ``open_clip_config.json`` and
    weights, or an open_clip model name; a name needs ``pretrained``: an open_clip tag (taken from the
    local cache, downloaded if the machine can), a checkpoint file, or ``"random"`` for untrained weights
    (a control: its rewards carry no information).
    """
    open_clip = _import_open_clip()
    name, pretrained_arg = open_clip_name(model, pretrained)
    try:
        clip = open_clip.create_model(name, pretrained=pretrained_arg, device=device)
    except RuntimeError as err:
        if "download" not in str(err).lower():
            raise
        raise FileNotFoundError(
            f"the weights for {model}/{pretrained} are not in the local cache and could not be downloaded ({err}). "
            "Fetch them once on a machine with internet, e.g. "
            f"`python -c \"import open_clip; open_clip.create_model('{model}', pretrained='{pretrained}')\"`, "
            "and copy ~/.cache/huggingface (or set HF_HOME), or pass pretrained=<checkpoint file>"
        ) from err
    clip.eval().requires_grad_(False)
    return clip, open_clip.get_tokenizer(name)


def open_clip_name(model: str = MINI_CLIP, pretrained: str | None = None) -> tuple[str, str | None]:
    """The name and ``pretrained`` argument that open_clip's ``create_model`` takes for :func:`load_clip`'s
    ``model`` and ``pretrained``: ``("local-dir:<folder>", None)`` for a folder (the mini CLIP's included), else
    the model name and the tag or checkpoint file (``None`` for ``"random"``). Settings that cannot load are a
    ValueError or FileNotFoundError that says why, before any weights are read."""
    open_clip = _import_open_clip()
    if model == MINI_CLIP:
        folder = assets_dir() / "mini_clip"
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(
                f"the mini CLIP is not at {folder}: it ships in the checkout's assets/ folder; "
                "remake it with `python scripts/train_mini_clip.py` or set ROBOFEEDBACK_ASSETS"
            )
        model = str(folder)
    if Path(model).is_dir():
        if pretrained is not None:
            raise ValueError(f"model={model!r} is a folder with its own weights; leave pretrained unset")
        if not any(Path(model).glob("*.safetensors")) and not any(Path(model).glob("*.bin")):
            raise FileNotFoundError(f"no weights (*.safetensors or *.bin) in the open_clip folder {model}")
        return f"local-dir:{model}", None
    if model not in open_clip.list_models():
        raise ValueError(
            f"unknown CLIP model {model!r}: use 'mini', a local open_clip folder, or an open_clip name "
            f"such as ViT-B-32 (all: open_clip.list_models())"
        )
    if pretrained is None:
        tags = [tag for name, tag in open_clip.list_pretrained() if name == model]
        raise ValueError(
            f"model={model!r} needs pretrained=: one of the tags {tags}, a checkpoint file, "
            "or 'random' for untrained weights"
        )
    pretrained_arg = None if pretrained == "random" else pretrained
    known_tag = pretrained_arg is not None and open_clip.get_pretrained_cfg(model, pretrained_arg)
    if pretrained_arg is not None and not known_tag and not Path(pretrained_arg).is_file():
        raise FileNotFoundError(
            f"pretrained={pretrained_arg!r} is neither an open_clip tag for {model} nor a file; "
            f"tags: {[t for n, t in open_clip.list_pretrained() if n == model]}"
        )
    return model, pretrained_arg


class ClipModel:
    """An open_clip model that embeds uint8 frames and text prompts (normalised embeddings, on the CPU).

    ``model``/``pretrained`` as in :func:`load_clip`; ``device`` defaults to the GPU when there is one;
    ``precision="bf16"`` runs the image encoder in bfloat16; frames go through it ``batch_size`` at a time. It
    pickles without its weights and reloads them when unpickled.
    """

    def __init__(
        self,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        device: str | None = None,
        precision: str = "fp32",
        batch_size: int = 64,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model_name, self.pretrained, self.device = model, pretrained, device or default_device()
        self.precision, self.batch_size = precision, int(batch_size)
        self._load()

    def _load(self) -> None:
        self._clip, self._tokenizer = load_clip(self.model_name, self.pretrained, self.device)
        cfg = self._clip.visual.preprocess_cfg
        size = cfg["size"]
        self.image_size = int(size if isinstance(size, int) else size[0])
        self._mean_px = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self._std_px = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)

    def save_open_clip(self, folder: str | Path) -> Path:
        """Write the model as an open_clip folder, the files open_clip's ``local-dir:`` and ``hf-hub:`` loaders read:
        ``open_clip_config.json`` (the architecture and preprocessing, written by open_clip's ``save_config_for_hf``),
        ``open_clip_model.safetensors`` (the weights as loaded) and, for a model with a Hugging Face tokenizer, its
        files. (open_clip's ``save_for_hf`` writes the same files but fails on CLIP's own tokenizer, the mini CLIP's,
        which has no files to save.)"""
        open_clip = _import_open_clip()
        from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME
        from open_clip.push_to_hf_hub import save_config_for_hf
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model_config = open_clip.get_model_config(open_clip_name(self.model_name, self.pretrained)[0])
        tensors = {k: v.detach().cpu().contiguous() for k, v in self._clip.state_dict().items()}
        save_file(tensors, folder / HF_SAFE_WEIGHTS_NAME)
        save_config_for_hf(self._clip, folder / HF_CONFIG_NAME, model_config)
        if hasattr(self._tokenizer, "save_pretrained"):
            self._tokenizer.save_pretrained(folder)
        return folder

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_clip", "_tokenizer", "_mean_px", "_std_px")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings ``(len(prompts), D)``."""
        tokens = self._tokenizer(list(prompts)).to(self.device)
        return F.normalize(self._clip.encode_text(tokens).float(), dim=-1).cpu()

    @torch.no_grad()
    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)`` of uint8 frames ``(N, H, W, 3)``, in batches of ``batch_size``."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
        out = []
        device_type = torch.device(self.device).type
        for start in range(0, len(frames), self.batch_size):
            pixels = self._preprocess(torch.from_numpy(frames[start : start + self.batch_size]))
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                out.append(F.normalize(self._clip.encode_image(pixels).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.embed_text([""]).shape[-1])

    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """open_clip's preprocessing on a uint8 batch: resize the short side to the model's size (bicubic),
        centre-crop, scale to [0, 1], normalise. Frames rendered at the model's size skip the resize."""
        x = frames.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        s = self.image_size
        if (h, w) != (s, s):
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
            top, left = (size[0] - s) // 2, (size[1] - s) // 2
            x = x[..., top : top + s, left : left + s]
        return (x - self._mean_px) / self._std_px


class GoalSimilarity:
    """R_CLIP-Reg of frames to a language goal: a :class:`ClipModel` with the goal's embedding g and the matrix M.

    ``goal`` and ``baseline`` are a prompt or a list of prompts (a list's normalised embeddings are averaged, as
    the authors' code does); ``alpha`` needs a baseline. Settings are checked before the model loads; the rest
    go to :class:`ClipModel`.

    >>> similarity = GoalSimilarity(
    ...     "a robot arm touching the red target", baseline="a robot arm", alpha=0.5, device="cpu"
    ... )
    >>> similarity.image_size  # the shipped mini CLIP's input size: render frames at it
    96
    >>> rewards = similarity(np.zeros((2, 96, 96, 3), np.uint8))
    >>> rewards.shape, rewards.dtype, bool(rewards[0] == rewards[1])
    ((2,), dtype('float32'), True)
    """

    def __init__(
        self,
        goal: str | Sequence[str],
        baseline: str | Sequence[str] | None = None,
        alpha: float = 0.0,
        model: str = MINI_CLIP,
        pretrained: str | None = None,
        device: str | None = None,
        precision: str = "fp32",
        batch_size: int = 64,
    ):
        self.goals = _prompts(goal, "goal")
        self.baselines = _prompts(baseline, "baseline") if baseline is not None else []
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if alpha > 0 and not self.baselines:
            raise ValueError("alpha > 0 projects onto the baseline-to-goal direction: give a baseline prompt")
        self.alpha = float(alpha)
        self.clip = ClipModel(model, pretrained, device, precision, batch_size)
        self.g = self.clip.embed_text(self.goals).mean(0)
        b = self.clip.embed_text(self.baselines).mean(0) if self.baselines else None
        self.m = regularizer(self.g, b, self.alpha)

    @property
    def image_size(self) -> int:
        """The model's input size: render frames at it."""
        return self.clip.image_size

    def from_embeddings(self, x: torch.Tensor) -> np.ndarray:
        """R_CLIP-Reg of normalised image embeddings ``x`` ``(N, D)``."""
        return clip_reward(x, self.g, self.m).numpy().astype(np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """R_CLIP-Reg of uint8 frames ``(N, H, W, 3)``."""
        return self.from_embeddings(self.clip.embed_images(frames))


def regularizer(g: torch.Tensor, b: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """M = alpha P_d + (1 - alpha) I with d = g - b and P_d = d d^T / ||d||^2 (the identity without a baseline)."""
    eye = torch.eye(len(g), dtype=g.dtype)
    if b is None:
        if alpha:
            raise ValueError("alpha > 0 needs a baseline embedding")
        return eye
    d = g - b
    projection = torch.outer(d, d) / d.dot(d)
    return alpha * projection + (1 - alpha) * eye


def clip_reward(x: torch.Tensor, g: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """R_CLIP-Reg(x) = 1 - 1/2 ||(x - g) M||^2 for image embeddings x ``(N, D)``, goal g ``(D,)``, M from
    :func:`regularizer` (with M = I and unit x, g this is the cosine similarity x.g)."""
    diff = (x - g) @ m
    return 1.0 - 0.5 * (diff * diff).sum(-1)


def _prompts(value: str | Sequence[str], name: str) -> list[str]:
    prompts = [value] if isinstance(value, str) else list(value)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"{name} must be a non-empty prompt or a list of them, got {value!r}")
    return prompts
