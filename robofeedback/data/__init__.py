"""Data: trajectories, segments, rollouts, recordings, video files and the feedback store."""

from robofeedback.data.recorder import RolloutRecorder
from robofeedback.data.rollout import as_policy, collect
from robofeedback.data.store import FeedbackStore, Label, Query, StoredSegment, StoreError
from robofeedback.data.trajectory import Segment, Trajectory
from robofeedback.data.video import VideoError, read_video, video_codec, write_video

__all__ = [
    "FeedbackStore",
    "Label",
    "Query",
    "RolloutRecorder",
    "Segment",
    "StoreError",
    "StoredSegment",
    "Trajectory",
    "VideoError",
    "as_policy",
    "collect",
    "read_video",
    "video_codec",
    "write_video",
]
