"""RL: reward wrappers and training stable-baselines3 policies on any reward function."""

from robofeedback.protocols import RewardFunction, Transitions
from robofeedback.rewards.base import EnvReward, FnReward, make_reward
from robofeedback.rl.feedback_loop import FeedbackLoop, relabel_replay_buffer
from robofeedback.rl.train import TrainConfig, TrainResult, evaluate, load_train_config, make_vec_env, train
from robofeedback.rl.wrappers import RewardWrapper, VecRewardWrapper

__all__ = [
    "RewardFunction",
    "Transitions",
    "EnvReward",
    "FeedbackLoop",
    "FnReward",
    "make_reward",
    "RewardWrapper",
    "VecRewardWrapper",
    "train",
    "evaluate",
    "make_vec_env",
    "relabel_replay_buffer",
    "load_train_config",
    "TrainConfig",
    "TrainResult",
]
