"""Trajectory sketches: the path an agent took, projected with the env's camera and drawn on a frame.

VARP (Singh, Bhaskar, Yu et al. 2025, arXiv 2503.13817) shows a vision-language judge the final frame of a
segment with the end effector's path drawn on it, a thin line from bright yellow at the start to dark brown at
the end, so that one image shows how the robot moved and not only where it ended. The judges in
``robofeedback.feedback.vlm`` and the annotation app draw their sketches with :func:`sketch`.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from robofeedback.data.video import read_video
from robofeedback.envs.camera import Camera

YELLOW = (255, 255, 0)
BROWN = (101, 67, 33)
SUBPIXEL_BITS = 4  # OpenCV's fixed-point shift: line ends are placed to 1/16 pixel

CameraLike = Camera | Callable[[np.ndarray], Camera]


def camera_for(camera: CameraLike, agent_pos: np.ndarray) -> Camera:
    """``camera`` itself, or, for a callable (such as ``env.camera_at``), the camera it gives for ``agent_pos``."""
    return camera if isinstance(camera, Camera) else camera(np.asarray(agent_pos, dtype=np.float64))


def sketch(
    frame: np.ndarray,
    path_3d: np.ndarray,
    camera: Camera,
    start_color: tuple[int, int, int] = YELLOW,
    end_color: tuple[int, int, int] = BROWN,
    width: int = 2,
) -> np.ndarray:
    """``frame`` (H, W, 3 uint8 RGB) with ``path_3d`` (N, 3 world points) drawn on it as seen by ``camera``.

    The polyline is anti-aliased and placed with sub-pixel accuracy; its colour runs linearly from
    ``start_color`` at the first point to ``end_color`` at the last (RGB). Parts outside the image are
    clipped, and steps with a point behind the camera (or a NaN position) are not drawn. When the frame's
    size differs from the camera's, pixel coordinates are scaled to the frame. Returns a new image.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 of shape (H, W, 3), got {frame.dtype} {frame.shape}")
    path = np.asarray(path_3d, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 3:
        raise ValueError(f"path_3d must have shape (N, 3), got {path.shape}")
    if width < 1:
        raise ValueError(f"width must be >= 1 pixel, got {width}")
    for name, color in (("start_color", start_color), ("end_color", end_color)):
        if len(color) != 3 or not all(0 <= c <= 255 for c in color):
            raise ValueError(f"{name} must be an (R, G, B) triple of 0-255 values, got {color!r}")
    out = np.ascontiguousarray(frame.copy())
    if len(path) < 2:
        return out
    height, width_px = out.shape[:2]
    uv, _ = camera.project(path)
    uv = uv * np.array([width_px / camera.width, height / camera.height])
    uv = uv + 0.5 * np.array([width_px / camera.width - 1, height / camera.height - 1])  # pixel centres
    lo, hi = np.array([-0.5 - width, -0.5 - width]), np.array([width_px - 0.5 + width, height - 0.5 + width])
    start, end = np.asarray(start_color, dtype=np.float64), np.asarray(end_color, dtype=np.float64)
    scale = 1 << SUBPIXEL_BITS
    for i in range(len(path) - 1):
        clipped = _clip_to_box(uv[i], uv[i + 1], lo, hi)
        if clipped is None:
            continue
        p, q = (tuple(int(round(x * scale)) for x in point) for point in clipped)
        t = (i + 0.5) / (len(path) - 1)
        color = tuple(float(c) for c in (1 - t) * start + t * end)
        cv2.line(out, p, q, color, thickness=width, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    return out


def _clip_to_box(p: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple | None:
    """The part of the line p-q inside the box [lo, hi] (Liang-Barsky), or None when there is none or an end
    is not finite; keeps far-off points (near the camera plane) from overflowing OpenCV's fixed-point ints."""
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        return None
    d = q - p
    t0, t1 = 0.0, 1.0
    for k in range(2):
        for step, room in ((-d[k], p[k] - lo[k]), (d[k], hi[k] - p[k])):
            if step == 0:
                if room < 0:
                    return None
                continue
            t = room / step
            if step < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    if t0 > t1:
        return None
    return p + t0 * d, p + t1 * d


def last_frame(segment) -> np.ndarray:
    """A segment's last frame: from its frames (a recorded :class:`~robofeedback.data.trajectory.Segment`) or the
    last frame of its video file (a :class:`~robofeedback.data.store.StoredSegment`)."""
    frames = getattr(segment, "frames", None)
    if frames is not None:
        return np.asarray(frames[-1])
    video = getattr(segment, "video_path", None)
    if video:
        return read_video(video)[-1]
    raise ValueError(f"segment {segment.id} has no frames or video: record the rollout with frames")


def sketch_segment(segment, camera: CameraLike, **kwargs) -> np.ndarray:
    """The segment's last frame with its agent path sketched on it (``kwargs`` go to :func:`sketch`)."""
    if getattr(segment, "agent_path", None) is None:
        raise ValueError(f"segment {segment.id} has no agent path to draw")
    path = np.asarray(segment.agent_path, dtype=np.float64)
    return sketch(last_frame(segment), path, camera_for(camera, path[-1]), **kwargs)
