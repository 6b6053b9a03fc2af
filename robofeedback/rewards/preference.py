"""A Bradley-Terry reward ensemble learned from pairwise preferences (PEBBLE / B-Pref, Lee et al. 2021).

Each of M members is an MLP r_m(s, a). For a labelled pair of segments
(sigma^a, sigma^b) with target y = P(sigma^a preferred) (1, 0, or 0.5 for "equal"),

    R_m(sigma) = sum_t r_m(s_t, a_t)
    P_m(sigma^a > sigma^b) = exp R_m(sigma^a) / (exp R_m(sigma^a) + exp R_m(sigma^b)) = sigmoid(R_m(a) - R_m(b))
    loss_m = -[y log P_m + (1 - y) log (1 - P_m)]

and the reward given to the agent is the ensemble mean r = (1/M) sum_m r_m(s, a), times ``scale`` (1 by
default; preferences fix a reward only up to scale, and SAC's settings assume one). With ``normalize`` the
mean is first standardised, (r - mu) / sigma, with mu and sigma of the ensemble's rewards on every labelled
state after each training (HERON's optional reward normalisation). ``offset`` is added last: a reward learned
from comparisons is known only up to a constant, and in an env that ends episodes early (a hopper that falls) a
positive one makes every step alive worth something, as the env's own alive bonus does.

Labels may say which level of a hierarchy decided them (HERON, ``PreferenceData.level``; 1 = the most
important factor). With ``level_scale`` = alpha > 1 a pair decided at level l counts as a smaller reward
difference: P_m = sigmoid(alpha^(l-1) (R_m(a) - R_m(b))), so the learned reward keeps larger gaps for
comparisons that the more important factors decided. (Our reading of the level scaling in the HERON
authors' rebuttal, whose equation we could not read.)
PEBBLE's defaults: 3 members, 3 hidden layers of 256, LeakyReLU, tanh output,
Adam with lr 3e-4, minibatches of 128, each member shuffled on its own, training
until 97% of the labels are predicted right.

Query selection (which unlabelled pairs to ask about): ``uniform``,
``disagreement`` (largest std of P_m across members) and ``entropy`` (largest
entropy of the mean P).

Feedback-efficiency options, each off by default (PEBBLE as it was):

- ``max_updates``: bounded, warm-started retraining. The members keep their weights from one fit to the next,
  and a fit stops after ``max_updates`` minibatch steps however many labels there are, so that a round's cost
  does not grow with the labels gathered.
- ``goal_difference`` (goal-conditioned envs, Gymnasium's ``GoalEnv`` contract: the reward is a function of the
  achieved and the desired goal): the difference achieved_goal - desired_goal is one more input, next to the
  observation. ``for_env(env, goal_features=True)`` finds both in the env's dict observation space. With
  ``goal_only`` the reward sees the two goals and their difference only (and the action with ``use_actions``),
  as the ``GoalEnv`` contract's compute_reward(achieved_goal, desired_goal) does. With ``goal_distance`` the
  distance ||achieved_goal - desired_goal|| is one more input: a reward that falls with it then peaks exactly at
  the goal, where a network fit on the coordinates alone tends to put its peak a few centimetres off (measured on
  panda reach; docs/results/preference/REPORT.md).
- ``label_smoothing`` = eps: each labelled pair is trained towards y (1 - eps) + eps / 2 in place of y, so that
  a wrong label (a teacher's mistake) is never learned as a certainty.
- ``input_norm``: each input feature x_j enters the networks as (x_j - m_j) / s_j, with m_j and s_j the mean
  and std of that feature over the labelled (and unlabelled) steps at the latest fit.
- SURF (Park et al. 2022), semi-supervised pseudo-labels: with ``pseudo_threshold`` = tau, every minibatch of
  B labelled pairs comes with mu B unlabelled pairs (mu = ``pseudo_ratio``), each member m labels them itself,
  y_hat = 1[P_m(a > b) > 0.5], and keeps a pair only where it is confident, max(P_m, 1 - P_m) > tau:

      loss_m = CE(labelled) + lambda (1 / (mu B)) sum_u 1[max(P_m, 1 - P_m) > tau] CE(P_m(u), y_hat_u)

  (lambda = ``pseudo_weight``; the pseudo-label is not differentiated through). The authors' MetaWorld runs use
  tau = 0.99 and mu = 4, and lambda = 1.
- SURF's temporal cropping, ``crop`` = c > 0: each labelled pair is cut, for each minibatch, to a common length
  H' drawn uniformly from [H - c, H] (H the shorter segment's length), each segment at its own random start,
  and keeps its label. Our reading of the paper's augmentation (the authors' setting is c = 5 for 50-step
  segments); unverified in its details: whether both segments share H', and whether the unlabelled pairs are
  cropped too (here they are not).
- RUNE (Liang et al. 2022), exploration from the ensemble's disagreement, ``explore_bonus`` = beta_0 > 0: the
  agent's reward becomes

      r_total(s, a) = r_hat(s, a) + beta_t std_m(r_m(s, a)) / sigma * scale,   beta_t = beta_0 (1 - rho)^t

  with t the env steps so far (:attr:`steps`, set by the feedback loop) and rho = ``explore_decay``. Our
  reading of the paper: beta_0 = 0.05 and rho in {1e-3, 1e-4} on MetaWorld; unverified.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from safetensors.torch import load_file, save_file
from torch import nn

from robofeedback.config import require_positive_ints
from robofeedback.data.rollout import collect
from robofeedback.data.trajectory import flat_obs
from robofeedback.feedback.teachers import oracle
from robofeedback.protocols import LearnedReward, RewardFunction, Transitions

ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU}
SELECTIONS = ("uniform", "disagreement", "entropy")
TARGETS = {"a": 1.0, "b": 0.0, "equal": 0.5}


@dataclass
class PreferenceData:
    """Pairs of segments as padded arrays: ``obs_*`` (N, H, D), ``act_*`` (N, H, A), ``mask_*`` (N, H), the
    target ``y`` (N,) = P(a preferred): 1 for "a", 0 for "b", 0.5 for "equal", and the ``level`` (N,) of a
    hierarchy that decided each label (0 where none did)."""

    obs_a: np.ndarray
    act_a: np.ndarray
    mask_a: np.ndarray
    obs_b: np.ndarray
    act_b: np.ndarray
    mask_b: np.ndarray
    y: np.ndarray
    level: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.level is None:
            self.level = np.zeros(len(self.y), np.int64)
        self.level = np.asarray(self.level, dtype=np.int64)
        if self.level.shape != self.y.shape:
            raise ValueError(f"level must have one entry per pair, got shape {self.level.shape} for {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def from_pairs(
        cls, pairs: list[tuple[Any, Any]], values: list[str] | None = None, levels: list[int | None] | None = None
    ) -> PreferenceData:
        """From segments (anything with ``obs`` (H + 1 rows) and ``actions`` (H rows)), labels and the levels that
        decided them; "skip" labels are left out. Without ``values`` the targets are NaN (candidates for query
        selection)."""
        values = values if values is not None else [None] * len(pairs)
        levels = levels if levels is not None else [None] * len(pairs)
        kept_levels = [lv or 0 for v, lv in zip(values, levels, strict=True) if v != "skip"]
        kept = [(a, b, v) for (a, b), v in zip(pairs, values, strict=True) if v != "skip"]
        for _, _, v in kept:
            if v is not None and v not in TARGETS:
                raise ValueError(f"preference labels are 'a', 'b', 'equal' or 'skip', got {v!r}")
        if not kept:
            raise ValueError("no pairs to learn from (all skipped, or none given)")
        horizon = max(max(len(a.actions), len(b.actions)) for a, b, _ in kept)

        def stack(segments):
            obs_dim = flat_obs(segments[0].obs).shape[-1]
            act_dim = int(np.prod(np.asarray(segments[0].actions).shape[1:]))
            obs = np.zeros((len(segments), horizon, obs_dim), np.float32)
            act = np.zeros((len(segments), horizon, act_dim), np.float32)
            mask = np.zeros((len(segments), horizon), np.float32)
            for i, s in enumerate(segments):
                n = len(s.actions)
                obs[i, :n] = flat_obs(s.obs)[:n]
                act[i, :n] = np.asarray(s.actions, dtype=np.float32).reshape(n, -1)
                mask[i, :n] = 1.0
            return obs, act, mask

        obs_a, act_a, mask_a = stack([a for a, _, _ in kept])
        obs_b, act_b, mask_b = stack([b for _, b, _ in kept])
        y = np.array([np.nan if v is None else TARGETS[v] for _, _, v in kept], dtype=np.float32)
        return cls(obs_a, act_a, mask_a, obs_b, act_b, mask_b, y, np.asarray(kept_levels, dtype=np.int64))

    @classmethod
    def concat(cls, parts: list[PreferenceData]) -> PreferenceData:
        horizon = max(p.obs_a.shape[1] for p in parts)

        def pad(x):
            widths = [(0, 0), (0, horizon - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
            return np.pad(x, widths)

        fields = list(cls.__dataclass_fields__)
        return cls(
            *(
                np.concatenate([getattr(p, f) if f in ("y", "level") else pad(getattr(p, f)) for p in parts])
                for f in fields
            )
        )


def _mlp(in_dim: int, hidden: int, layers: int, activation: str, output: str | None) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    modules.append(nn.Linear(width, 1))
    if output == "tanh":
        modules.append(nn.Tanh())
    return nn.Sequential(*modules)


@dataclass
class PreferenceSettings:
    """The preference core's settings: a config's ``preference:`` section (see the module's docstring for each).
    Invalid values are refused when the settings are made, before any network is built."""

    hidden: int = 256
    layers: int = 3
    activation: str = "leaky_relu"
    ensemble: int = 3
    output: str | None = "tanh"
    use_actions: bool = True
    scale: float = 1.0
    normalize: bool = False
    offset: float = 0.0
    level_scale: float | None = None
    lr: float = 3e-4
    batch_size: int = 128
    max_epochs: int = 200
    stop_accuracy: float = 0.97
    label_smoothing: float = 0.0
    max_updates: int | None = None
    goal_difference: list[int] | None = None
    goal_only: bool = False
    goal_distance: bool = False
    input_norm: bool = False
    pseudo_threshold: float | None = None
    pseudo_ratio: int = 4
    pseudo_weight: float = 1.0
    crop: int = 0
    explore_bonus: float = 0.0
    explore_decay: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.output not in ("tanh", None):
            raise ValueError(f"output must be 'tanh' or None, got {self.output!r}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.level_scale is not None and not self.level_scale >= 1:
            raise ValueError(f"level_scale must be >= 1 (or None for no level scaling), got {self.level_scale}")
        if self.pseudo_threshold is not None and not 0.5 <= self.pseudo_threshold < 1:
            raise ValueError(
                f"pseudo_threshold must be in [0.5, 1) (or None: no pseudo-labels), got {self.pseudo_threshold}"
            )
        if not self.pseudo_weight >= 0 or not self.explore_bonus >= 0 or not 0 <= self.explore_decay < 1:
            raise ValueError(
                f"need pseudo_weight >= 0, explore_bonus >= 0 and 0 <= explore_decay < 1, got {self.pseudo_weight}, "
                f"{self.explore_bonus} and {self.explore_decay}"
            )
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.crop < 0:
            raise ValueError(f"crop must be >= 0 (0: no temporal cropping), got {self.crop}")
        if self.max_updates is not None:
            require_positive_ints(max_updates=self.max_updates)
        if (self.goal_only or self.goal_distance) and self.goal_difference is None:
            raise ValueError(
                "goal_only and goal_distance need goal_difference (the achieved and desired goals' places)"
            )
        require_positive_ints(
            pseudo_ratio=self.pseudo_ratio,
            hidden=self.hidden,
            layers=self.layers,
            ensemble=self.ensemble,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
        )
        for name in ("scale", "offset", "label_smoothing", "pseudo_weight", "explore_bonus", "explore_decay"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("normalize", "goal_only", "goal_distance", "input_norm"):
            setattr(self, name, bool(getattr(self, name)))
        self.crop = int(self.crop)
        self.level_scale = None if self.level_scale is None else float(self.level_scale)
        self.pseudo_threshold = None if self.pseudo_threshold is None else float(self.pseudo_threshold)
        self.goal_difference = None if self.goal_difference is None else [int(i) for i in self.goal_difference]

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> PreferenceSettings:
        """The settings of a ``preference:`` mapping; an unknown key is a ValueError naming it and the known ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ValueError(f"unknown preference settings {unknown}; the preference core takes {known}")
        return cls(**settings)


PRETRAINED_FORMAT = "robofeedback-preference-reward"
PRETRAINED_VERSION = 1
PRETRAINED_WEIGHTS = "model.safetensors"


def model_card(name: str, config: dict[str, Any], card: dict[str, Any]) -> str:
    """A reward model's card: what it is, its inputs and network, and what ``card`` says it was trained on."""
    sources = card.get("sources") or {}
    lines = [
        "---",
        f"license: {card.get('license', 'unknown')}",
        "library_name: robofeedback",
        "tags: [reward-model, preference-learning, robotics]",
        "---",
        "",
        f"# {name}: a reward model learned from preferences",
        "",
        "An ensemble of MLPs trained with the Bradley-Terry loss on segment comparisons (robofeedback). Load it "
        "with `robofeedback.rewards.preference." + name + ".from_pretrained(path)`; the weights are "
        f"`{PRETRAINED_WEIGHTS}`, the settings `config.json`.",
        "",
        f"- env: {card.get('env', 'not recorded')}",
        f"- inputs: observations of {config['obs_dim']} numbers"
        + (f" and actions of {config['act_dim']}" if config.get("use_actions") else " (actions not used)"),
        f"- network: {config.get('ensemble')} members, {config.get('layers')} x {config.get('hidden')} hidden units",
        f"- labels: {card.get('labels', 'not recorded')}",
        "- sources: " + (", ".join(f"{k} ({v})" for k, v in sources.items()) if sources else "not recorded"),
        f"- held-out accuracy: {card.get('heldout_accuracy', 'not recorded')}",
        "",
    ]
    return "\n".join(lines)


class PreferenceReward(LearnedReward):
    """An ensemble of MLP rewards r(s, a) trained with the Bradley-Terry loss on segment returns.

    Two labelled pairs of 5-step segments that hold still at a height: the higher one is preferred.

    >>> from robofeedback.data.trajectory import Trajectory
    >>> def still(height):
    ...     trajectory = Trajectory(np.full((6, 2), height), np.zeros((5, 1)), np.zeros(5), [{}] * 5, np.zeros((6, 3)))
    ...     return trajectory.segment(0, 5)
    >>> data = PreferenceData.from_pairs([(still(1.0), still(0.0)), (still(-1.0), still(0.5))], ["a", "b"])
    >>> model = PreferenceReward(obs_dim=2, act_dim=1, hidden=16, layers=2, lr=1e-2, seed=0)
    >>> model.fit(data)["train_accuracy"], model.accuracy(data)
    (1.0, 1.0)
    >>> high, low = model.rewards_of(np.array([[1.0, 1.0], [-1.0, -1.0]]), np.zeros((2, 1)))
    >>> bool(high > low)
    True
    """

    def __init__(self, obs_dim: int, act_dim: int, **settings: Any):
        """A model for ``obs_dim`` observation and ``act_dim`` action features with the
        :class:`PreferenceSettings` ``settings``."""
        require_positive_ints(obs_dim=obs_dim)
        values = PreferenceSettings.from_dict(settings)
        if values.goal_difference is not None:
            a0, a1, d0, d1 = (int(i) for i in values.goal_difference)
            if not (0 <= a0 < a1 <= obs_dim and 0 <= d0 < d1 <= obs_dim and a1 - a0 == d1 - d0):
                raise ValueError(
                    f"goal_difference is [achieved start, end, desired start, end] of two equal slices of the "
                    f"{obs_dim} observation features, got {values.goal_difference}"
                )
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, **asdict(values)}
        torch.manual_seed(values.seed)
        in_dim = obs_dim + (act_dim if values.use_actions else 0)
        if values.goal_difference is not None:
            goal_dim = values.goal_difference[1] - values.goal_difference[0]
            actions = act_dim if values.use_actions and values.goal_only else 0
            in_dim = (3 * goal_dim if values.goal_only else in_dim + goal_dim) + actions + int(values.goal_distance)
        self.members = nn.ModuleList(
            [
                _mlp(in_dim, values.hidden, values.layers, values.activation, values.output)
                for _ in range(values.ensemble)
            ]
        )
        self.optimizer = torch.optim.Adam(self.members.parameters(), lr=values.lr)
        self.rng = np.random.default_rng(values.seed)
        self.history: list[dict[str, float]] = []
        self.norm = (0.0, 1.0)  # (mu, sigma) of the ensemble mean on the labelled states, for ``normalize``
        # per-feature (mean, std) of the inputs at the latest fit, for ``input_norm``
        self.input_stats = (torch.zeros(in_dim), torch.ones(in_dim))
        self.steps = 0  # env steps so far, for RUNE's decaying bonus (the feedback loop keeps it up to date)

    @classmethod
    def for_env(cls, env, goal_features: bool = False, **kwargs: Any) -> PreferenceReward:
        """Sized for ``env``'s observation and action spaces (dict observations flattened). With
        ``goal_features`` (an env with ``achieved_goal`` and ``desired_goal`` observations, flattened or not),
        their difference is an input too (``goal_difference``).

        >>> import gymnasium as gym
        >>> model = PreferenceReward.for_env(gym.make("Pendulum-v1"), seed=0)
        >>> model.config["obs_dim"], model.config["act_dim"]
        (3, 1)
        >>> batch = Transitions(np.zeros((4, 3)), np.zeros((4, 1)), np.zeros((4, 3)), [{}] * 4)
        >>> rewards = model(batch)  # scores a batch of transitions at once, as every reward function does
        >>> rewards.shape, rewards.dtype
        ((4,), dtype('float32'))
        """
        obs_dim = int(spaces.flatdim(env.observation_space))
        act_dim = int(spaces.flatdim(env.action_space))
        if goal_features:
            kwargs["goal_difference"] = goal_slices(env)
        return cls(obs_dim, act_dim, **kwargs)

    # -- scoring ------------------------------------------------------------------------------

    def _inputs(self, obs: np.ndarray, actions: np.ndarray) -> torch.Tensor:
        x = flat_obs(obs)
        if self.config["use_actions"]:
            a = np.asarray(actions, dtype=np.float32).reshape(*x.shape[:-1], self.config["act_dim"])
            x = np.concatenate([x, a], axis=-1)
        if x.shape[-1] != self.config["obs_dim"] + (self.config["act_dim"] if self.config["use_actions"] else 0):
            raise ValueError(
                f"reward model takes obs_dim {self.config['obs_dim']} + act_dim {self.config['act_dim']} inputs, "
                f"got {x.shape[-1]}"
            )
        return torch.from_numpy(np.ascontiguousarray(x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The networks' input features from observations (and actions) ``x`` (..., D): with ``goal_difference``,
        achieved minus desired goal appended."""
        goal = self.config.get("goal_difference")
        if goal is None:
            return x
        achieved, desired = x[..., goal[0] : goal[1]], x[..., goal[2] : goal[3]]
        difference = achieved - desired
        if self.config.get("goal_only"):
            features = [achieved, desired, difference, x[..., self.config["obs_dim"] :]]
        else:
            features = [x, difference]
        if self.config.get("goal_distance"):
            features.append(torch.linalg.vector_norm(difference, dim=-1, keepdim=True))
        return torch.cat(features, dim=-1)

    def _forward(self, member: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``member``'s reward for inputs ``x`` (..., D), standardised per feature first with ``input_norm``."""
        x = self._features(x)
        if self.config.get("input_norm"):
            mean, std = self.input_stats
            x = (x - mean) / std
        return member(x).squeeze(-1)

    def member_rewards(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Each member's reward, shape ``(M, *batch)``."""
        x = self._inputs(obs, actions)
        with torch.no_grad():
            return torch.stack([self._forward(m, x) for m in self.members]).numpy()

    @property
    def explore_weight(self) -> float:
        """RUNE's beta_t = beta_0 (1 - rho)^t at the current :attr:`steps` (0 without ``explore_bonus``)."""
        return self.config.get("explore_bonus", 0.0) * (1.0 - self.config.get("explore_decay", 0.0)) ** self.steps

    def rewards_of(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The reward the agent gets: the ensemble mean (standardised with ``normalize``) times ``scale``, plus
        RUNE's bonus beta_t times the members' std on the same scale (with ``explore_bonus``), plus ``offset``."""
        mu, sigma = self.norm
        members = self.member_rewards(obs, actions)
        scaled = (members.mean(axis=0) - mu) / sigma * self.config["scale"]
        beta = self.explore_weight
        if beta > 0:
            scaled = scaled + beta * members.std(axis=0) / sigma * self.config["scale"]
        return scaled + self.config.get("offset", 0.0)

    def reward(self, batch: Transitions) -> np.ndarray:
        return self.rewards_of(batch.obs, batch.action)

    # -- learning -----------------------------------------------------------------------------

    def _returns(self, member: nn.Module, obs, act, mask) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1) if self.config["use_actions"] else obs
        return (self._forward(member, x) * mask).sum(dim=-1)

    def _tensors(self, data: PreferenceData, index: np.ndarray, crop: bool = False):
        """The minibatch ``index`` of ``data`` as tensors, the last one each pair's logit multiplier
        alpha^(level - 1) (1 without level scaling, or for pairs no level decided); with ``crop``, the masks
        temporally cropped (:func:`temporal_crop`)."""
        fields = {f: getattr(data, f)[index] for f in ("obs_a", "act_a", "mask_a", "obs_b", "act_b", "mask_b", "y")}
        if crop and self.config.get("crop", 0) > 0:
            fields["mask_a"], fields["mask_b"] = temporal_crop(
                fields["mask_a"], fields["mask_b"], self.config["crop"], self.rng
            )
        tensors = [torch.from_numpy(np.ascontiguousarray(v)) for v in fields.values()]
        alpha = self.config.get("level_scale")
        levels = data.level[index]
        multiplier = np.ones(len(index), np.float32) if alpha is None else alpha ** np.maximum(levels - 1, 0)
        return [*tensors, torch.from_numpy(multiplier.astype(np.float32))]

    def fit(
        self, data: PreferenceData, max_epochs: int | None = None, unlabelled: PreferenceData | None = None
    ) -> dict[str, float]:
        """Train every member on ``data`` until they label ``stop_accuracy`` of it right during an epoch (as
        B-Pref measures it), ``max_epochs`` pass, or ``max_updates`` minibatch steps have run (warm-started: the
        members go on from their weights). With ``pseudo_threshold``, ``unlabelled`` pairs add SURF's pseudo-label
        loss. Returns the final loss, that accuracy, the epochs and updates run, and the fraction of unlabelled
        pairs confident enough to be pseudo-labelled."""
        if len(data) == 0 or np.isnan(data.y).any():
            raise ValueError("fit needs labelled pairs (no NaN targets)")
        max_epochs = max_epochs or self.config["max_epochs"]
        max_updates = self.config.get("max_updates") or float("inf")
        batch = self.config["batch_size"]
        semi = self.config.get("pseudo_threshold") is not None and unlabelled is not None and len(unlabelled) > 0
        smoothing = self.config.get("label_smoothing", 0.0)
        if self.config.get("input_norm"):
            self._fit_input_stats(data if unlabelled is None else PreferenceData.concat([data, unlabelled]))
        n = len(data)
        loss_value, accuracy, epochs, updates = float("nan"), float("nan"), 0, 0
        kept, offered = 0, 0
        while epochs < max_epochs and updates < max_updates:
            epochs += 1
            orders = [self.rng.permutation(n) for _ in self.members]  # each member sees its own shuffle
            losses, correct, strict_seen = [], 0, 0
            for start in range(0, n, batch):
                if updates >= max_updates:
                    break
                updates += 1
                self.optimizer.zero_grad()
                total = 0.0
                for member, order in zip(self.members, orders, strict=True):
                    oa, aa, ma, ob, ab, mb, y, k = self._tensors(data, order[start : start + batch], crop=True)
                    logit = k * (self._returns(member, oa, aa, ma) - self._returns(member, ob, ab, mb))
                    target = y * (1 - smoothing) + smoothing / 2
                    total = total + nn.functional.binary_cross_entropy_with_logits(logit, target)
                    if semi:
                        loss_u, confident = self._pseudo_label_loss(member, unlabelled, len(y))
                        total = total + self.config["pseudo_weight"] * loss_u
                        kept, offered = kept + confident, offered + len(y) * self.config["pseudo_ratio"]
                    extra = self.regularizer(member)
                    if extra is not None:
                        total = total + extra
                    strict = (y == 0.0) | (y == 1.0)
                    correct += int(((logit > 0) == (y == 1.0))[strict].sum())
                    strict_seen += int(strict.sum())
                total.backward()
                self.optimizer.step()
                losses.append(float(total.detach()) / len(self.members))
            loss_value = float(np.mean(losses))
            accuracy = correct / strict_seen if strict_seen else float("nan")
            if accuracy >= self.config["stop_accuracy"]:
                break
        if self.config.get("normalize"):
            states = np.concatenate([data.obs_a[data.mask_a > 0], data.obs_b[data.mask_b > 0]])
            actions = np.concatenate([data.act_a[data.mask_a > 0], data.act_b[data.mask_b > 0]])
            mean = self.member_rewards(states, actions).mean(axis=0)
            self.norm = (float(mean.mean()), float(max(mean.std(), 1e-6)))
        result = {"loss": loss_value, "train_accuracy": accuracy, "epochs": epochs, "updates": updates, "pairs": n}
        if semi:
            result["pseudo_labelled"] = kept / offered if offered else float("nan")
        self.history.append(result)
        return result

    def _pseudo_label_loss(self, member: nn.Module, unlabelled: PreferenceData, n_labelled: int):
        """SURF's term for one member: the cross-entropy on ``pseudo_ratio`` x ``n_labelled`` unlabelled pairs drawn
        at random, against the member's own confident labels (masked elsewhere, averaged over all drawn pairs);
        returns it and how many pairs were confident."""
        index = self.rng.integers(len(unlabelled), size=n_labelled * self.config["pseudo_ratio"])
        oa, aa, ma, ob, ab, mb, _, k = self._tensors(unlabelled, index)
        logit = k * (self._returns(member, oa, aa, ma) - self._returns(member, ob, ab, mb))
        with torch.no_grad():
            p = torch.sigmoid(logit)
            confident = (torch.maximum(p, 1 - p) > self.config["pseudo_threshold"]).float()
            y_hat = (p > 0.5).float()
        loss = nn.functional.binary_cross_entropy_with_logits(logit, y_hat, reduction="none")
        return (loss * confident).mean(), int(confident.sum())

    def _fit_input_stats(self, data: PreferenceData) -> None:
        """Per-feature mean and std of every step of ``data``'s segments, for ``input_norm``."""
        parts = [data.obs_a[data.mask_a > 0], data.obs_b[data.mask_b > 0]]
        if self.config["use_actions"]:
            parts = [
                np.concatenate([parts[0], data.act_a[data.mask_a > 0]], axis=-1),
                np.concatenate([parts[1], data.act_b[data.mask_b > 0]], axis=-1),
            ]
        x = self._features(torch.from_numpy(np.concatenate(parts))).numpy()
        self.input_stats = (
            torch.from_numpy(x.mean(axis=0).astype(np.float32)),
            torch.from_numpy(np.maximum(x.std(axis=0), 1e-3).astype(np.float32)),
        )

    def regularizer(self, member: nn.Module) -> torch.Tensor | None:
        """A term added to ``member``'s loss on every minibatch (none here; subclasses such as VARP's add one)."""
        return None

    @classmethod
    def settings(cls) -> set[str]:
        """:class:`PreferenceSettings` (and a subclass's own), with :meth:`for_env`'s ``goal_features`` in place of
        ``goal_difference``; the sizes come from the env."""
        own = {f.name for f in fields(PreferenceSettings)} - {"goal_difference"}
        return (super().settings() - {"obs_dim", "act_dim"}) | own | {"goal_features"}

    @property
    def wants_unlabelled(self) -> bool:
        """Whether :meth:`fit` learns from unlabelled pairs too (SURF's pseudo-labels, ``pseudo_threshold``)."""
        return self.config.get("pseudo_threshold") is not None

    def update(self, data: PreferenceData) -> dict[str, float]:
        """Learn from preference data (the reward-function contract's update)."""
        return self.fit(data)

    def predict_proba(self, data: PreferenceData) -> np.ndarray:
        """P_m(a preferred) for each member and pair, shape ``(M, N)``."""
        out = []
        with torch.no_grad():
            for start in range(0, len(data), 1024):
                oa, aa, ma, ob, ab, mb, _, k = self._tensors(data, np.arange(start, min(start + 1024, len(data))))
                out.append(
                    torch.stack(
                        [
                            torch.sigmoid(k * (self._returns(m, oa, aa, ma) - self._returns(m, ob, ab, mb)))
                            for m in self.members
                        ]
                    )
                )
        return torch.cat(out, dim=1).numpy()

    def accuracy(self, data: PreferenceData) -> float:
        """Fraction of the strict ("a" or "b") labels the ensemble mean predicts right; NaN when there are none."""
        strict = (data.y == 0.0) | (data.y == 1.0)
        if not strict.any():
            return float("nan")
        p = self.predict_proba(data).mean(axis=0)
        return float(np.mean((p[strict] > 0.5) == (data.y[strict] == 1.0)))

    def select(self, candidates: PreferenceData, n: int, strategy: str = "disagreement") -> np.ndarray:
        """Indices of the ``n`` candidate pairs to ask about, by ``strategy``."""
        if strategy not in SELECTIONS:
            raise ValueError(f"selection strategy must be one of {SELECTIONS}, got {strategy!r}")
        n = min(n, len(candidates))
        if strategy == "uniform":
            return self.rng.choice(len(candidates), size=n, replace=False)
        p = self.predict_proba(candidates)
        if strategy == "disagreement":
            score = p.std(axis=0)
        else:
            mean = np.clip(p.mean(axis=0), 1e-6, 1 - 1e-6)
            score = -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))
        return np.argsort(-score, kind="stable")[:n]

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Weights and optimizer state (torch) plus config and training history (JSON), in one ``.pt`` file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "config": json.dumps(self.config),
                "history": json.dumps(self.history),
                "norm": json.dumps(self.norm),
                "input_stats": torch.stack(self.input_stats),
                "steps": self.steps,
                "members": self.members.state_dict(),
                "optimizer": self.optimizer.state_dict(),
            },
            path,
        )
        return path

    def save_pretrained(self, folder: str | Path, card: dict[str, Any] | None = None) -> Path:
        """The model as a folder other tools open: ``config.json`` (the class, its settings and the reward's
        standardisation), ``model.safetensors`` (the ensemble's weights and the input statistics; no optimizer
        state: a loaded model scores, and refits from there with a fresh optimizer), ``history.json`` and a model
        card, ``README.md``, from ``card``: what it was trained on (``env``), ``labels`` and their ``sources``,
        ``heldout_accuracy``, ``license``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"members.{k}": v.contiguous() for k, v in self.members.state_dict().items()}
        tensors["input_mean"], tensors["input_std"] = (t.contiguous() for t in self.input_stats)
        save_file(tensors, folder / PRETRAINED_WEIGHTS)
        config = {
            "format": PRETRAINED_FORMAT,
            "format_version": PRETRAINED_VERSION,
            "class": type(self).__name__,
            "config": self.config,
            "norm": list(self.norm),
            "steps": self.steps,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (folder / "history.json").write_text(json.dumps(self.history) + "\n")
        (folder / "README.md").write_text(model_card(type(self).__name__, self.config, card or {}))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> PreferenceReward:
        """A model saved with :meth:`save_pretrained`; a folder that is not one (no or another ``config.json``, a
        format version this code does not read, weights that do not fit the settings) is a ``ValueError`` that
        says which."""
        folder = Path(folder)
        if not (folder / "config.json").is_file() or not (folder / PRETRAINED_WEIGHTS).is_file():
            raise ValueError(f"{folder} is not a saved reward model: it needs config.json and {PRETRAINED_WEIGHTS}")
        saved = json.loads((folder / "config.json").read_text())
        if saved.get("format") != PRETRAINED_FORMAT:
            raise ValueError(
                f"{folder}/config.json is not a robofeedback reward model (format {saved.get('format')!r})"
            )
        if saved.get("format_version") != PRETRAINED_VERSION:
            raise ValueError(
                f"{folder} is reward-model format version {saved.get('format_version')}; this robofeedback reads "
                f"version {PRETRAINED_VERSION}"
            )
        if saved.get("class") != cls.__name__:
            raise ValueError(
                f"{folder} holds a {saved.get('class')}: load it with {saved.get('class')}.from_pretrained"
            )
        model = cls(**saved["config"])
        tensors = load_file(folder / PRETRAINED_WEIGHTS)
        members = {k.removeprefix("members."): v for k, v in tensors.items() if k.startswith("members.")}
        try:
            model.members.load_state_dict(members)
        except RuntimeError as error:
            raise ValueError(f"{folder}: the weights do not fit the saved settings ({error})") from None
        model.input_stats = (tensors["input_mean"], tensors["input_std"])
        model.norm = tuple(saved["norm"])
        model.steps = int(saved["steps"])
        if (folder / "history.json").is_file():
            model.history = json.loads((folder / "history.json").read_text())
        return model

    @classmethod
    def load(cls, path: str | Path) -> PreferenceReward:
        state = torch.load(Path(path), weights_only=True)
        model = cls(**json.loads(state["config"]))
        model.members.load_state_dict(state["members"])
        model.optimizer.load_state_dict(state["optimizer"])
        model.history = json.loads(state["history"])
        model.norm = tuple(json.loads(state.get("norm", "[0.0, 1.0]")))
        if "input_stats" in state:
            model.input_stats = (state["input_stats"][0], state["input_stats"][1])
        model.steps = int(state.get("steps", 0))
        return model

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["optimizer"] = None  # the optimizer is rebuilt on unpickling; copies only score
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.optimizer = torch.optim.Adam(self.members.parameters(), lr=self.config["lr"])


def goal_slices(env: Any) -> list[int]:
    """[start, end) of ``achieved_goal`` and of ``desired_goal`` in ``env``'s flattened observation (Gymnasium's
    flattening order of its dict space), for ``goal_difference``."""
    space = getattr(env, "_dict_space", None) or env.observation_space
    if not isinstance(space, spaces.Dict) or not {"achieved_goal", "desired_goal"} <= set(space.spaces):
        raise ValueError(
            "goal_features needs an env whose observations have 'achieved_goal' and 'desired_goal' (a goal-"
            f"conditioned env such as panda-gym's), not {space}"
        )
    offsets, start = {}, 0
    for key, sub in space.spaces.items():
        offsets[key] = (start, start + int(spaces.flatdim(sub)))
        start = offsets[key][1]
    return [*offsets["achieved_goal"], *offsets["desired_goal"]]


def temporal_crop(
    mask_a: np.ndarray, mask_b: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SURF's temporal cropping on a minibatch's step masks (N, H): each pair is cut to a common length H' drawn
    uniformly from [max(1, L - crop), L], L the shorter segment's length, each segment at its own random start
    within its steps; the label stays the pair's."""
    length_a, length_b = mask_a.sum(axis=1).astype(np.int64), mask_b.sum(axis=1).astype(np.int64)
    shorter = np.minimum(length_a, length_b)
    kept = rng.integers(np.maximum(shorter - crop, 1), shorter + 1)
    start_a = rng.integers(0, length_a - kept + 1)
    start_b = rng.integers(0, length_b - kept + 1)
    steps = np.arange(mask_a.shape[1])[None, :]

    def window(start: np.ndarray) -> np.ndarray:
        return ((steps >= start[:, None]) & (steps < (start + kept)[:, None])).astype(mask_a.dtype)

    return window(start_a), window(start_b)


def fresh_pair_accuracy(
    reward_model: PreferenceReward,
    env: Any,
    policy: Any,
    segment_length: int,
    n_pairs: int = 500,
    episodes: int = 20,
    seed: int = 0,
) -> float:
    """The reward model's agreement with the Oracle (segment sums of the env's reward) on ``n_pairs`` fresh pairs
    of segments drawn from ``episodes`` episodes of ``policy`` and as many of random actions, in ``env``.

    Held out and unbiased, unlike the accuracy on a round's new labels before training on them, whose pairs are
    chosen where the ensemble disagrees most (the hardest pairs: about 0.5 even for a good model)."""
    trajectories = collect(env, policy, n_episodes=episodes, deterministic=False, seed=seed)
    trajectories += collect(env, None, n_episodes=episodes)
    rng = np.random.default_rng(seed)

    def segment():
        t = trajectories[rng.integers(len(trajectories))]
        start = rng.integers(max(1, len(t) - segment_length + 1))
        return t.segment(start, min(start + segment_length, len(t)))

    pairs = [(segment(), segment()) for _ in range(n_pairs)]
    return reward_model.accuracy(PreferenceData.from_pairs(pairs, oracle().label_many(pairs)))


class StateEntropyReward(RewardFunction):
    """PEBBLE's unsupervised pre-training reward: a particle estimate of state entropy, the distance from each new
    state to its k-th nearest neighbour among the states seen so far, divided by a running std of that distance."""

    def __init__(self, k: int = 5, capacity: int = 10_000, seed: int = 0):
        if k <= 0 or capacity <= k:
            raise ValueError(f"need k > 0 and capacity > k, got k={k}, capacity={capacity}")
        self.k, self.capacity = k, capacity
        self.memory: np.ndarray | None = None
        self.size = 0
        self.seen = 0
        self.rng = np.random.default_rng(seed)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0

    def reward(self, batch: Transitions) -> np.ndarray:
        states = flat_obs(batch.next_obs).reshape(len(batch), -1)
        if self.memory is None:
            self.memory = np.zeros((self.capacity, states.shape[1]), np.float32)
        if self.size > self.k:
            distances = np.linalg.norm(states[:, None, :] - self.memory[None, : self.size], axis=-1)
            knn = np.partition(distances, self.k - 1, axis=1)[:, self.k - 1]
        else:
            knn = np.ones(len(states), np.float32)
        for value in knn:  # Welford's running variance
            self._count += 1
            delta = value - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (value - self._mean)
        std = np.sqrt(self._m2 / self._count) if self._count > 1 else 1.0
        self._remember(states)
        return (knn / max(std, 1e-8)).astype(np.float32)

    def _remember(self, states: np.ndarray) -> None:
        for state in states:  # reservoir sampling keeps a uniform sample of everything seen
            self.seen += 1
            if self.size < self.capacity:
                self.memory[self.size] = state
                self.size += 1
            else:
                slot = self.rng.integers(self.seen)
                if slot < self.capacity:
                    self.memory[slot] = state
