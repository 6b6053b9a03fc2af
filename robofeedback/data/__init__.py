"""Data: trajectories, segments, rollouts and video files."""

from robofeedback.data.rollout import as_policy, collect
from robofeedback.data.trajectory import Segment, Trajectory
from robofeedback.data.video import VideoError, read_video, video_codec, write_video

__all__ = ["Trajectory", "Segment", "collect", "as_policy", "write_video", "read_video", "video_codec", "VideoError"]
