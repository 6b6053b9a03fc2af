"""VLM-RM's reward: the goal-baseline regularised CLIP similarity of each rendered frame to a language goal.

R_CLIP-Reg (Rocamonde et al. 2023, Eq. 2) is computed by :class:`~robofeedback.feedback.clip_model.GoalSimilarity`,
which the CLIP judges share; this module makes it a reward function: scaled, optionally standardised, and scored
on every k-th step or at an episode's end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from robofeedback.config import require_positive_ints
from robofeedback.feedback.clip_model import MINI_CLIP, GoalSimilarity
from robofeedback.protocols import RewardFunction, Transitions


class ClipReward(RewardFunction):
    """VLM-RM reward: the goal-baseline regularised CLIP similarity of each frame to a language goal.

    ``goal`` and ``baseline`` are a prompt or a list of prompts (a list's normalised embeddings are
    averaged, as the authors' code does); ``alpha`` needs a baseline. ``scale`` multiplies the reward;
    ``normalize`` standardises it with running statistics of every reward computed so far. ``every=k``
    scores (and renders) every k-th step of an episode and holds the last score between; ``at_episode_end``
    scores only the last step (0 elsewhere). ``precision="bf16"`` runs the image encoder in bfloat16; ``device``
    defaults to the GPU when there is one.
    """

    needs_frames = True

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
        scale: float = 1.0,
        normalize: bool = False,
        every: int = 1,
        at_episode_end: bool = False,
    ):
        require_positive_ints(every=every)
        self.scale, self.normalize = float(scale), bool(normalize)
        self.reward_every, self.reward_at_episode_end = every, bool(at_episode_end)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0
        self.similarity = GoalSimilarity(goal, baseline, alpha, model, pretrained, device, precision, batch_size)

    @property
    def image_size(self) -> int:
        """The CLIP model's input size: render frames at it."""
        return self.similarity.image_size

    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """Normalised image embeddings ``(N, D)`` of uint8 frames ``(N, H, W, 3)``."""
        return self.similarity.clip.embed_images(frames)

    def reward_from_embeddings(self, x: torch.Tensor) -> np.ndarray:
        """The reward of normalised image embeddings ``x`` ``(N, D)``, before scaling."""
        return self.similarity.from_embeddings(x)

    def reward(self, batch: Transitions) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("ClipReward scores rendered frames: the batch has none (use the reward wrappers)")
        r = self.reward_from_embeddings(self.embed_images(batch.frames)) * self.scale
        if not self.normalize:
            return r
        for value in r:  # Welford's running mean and variance
            self._count += 1
            delta = value - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (value - self._mean)
        std = np.sqrt(self._m2 / self._count) if self._count > 1 else 1.0
        return np.clip((r - self._mean) / max(std, 1e-6), -5.0, 5.0).astype(np.float32)
