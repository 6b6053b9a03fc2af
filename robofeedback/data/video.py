"""Video files: frames to an H.264 mp4 that browsers play, and any ffmpeg-readable video back to frames."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import cv2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

# imageio-ffmpeg starts ffmpeg with preexec_fn=os.setpgrp (to keep Ctrl-C from it) unless this is set. A
# preexec_fn makes the forked child run Python before exec: it tore down the other threads' states, freed an SSL
# context of the annotation app's HTTP client there, and spun forever on a lock that thread held at the fork
# (seen in the demo, once in four runs). Without it ffmpeg is started by fork-exec alone; it is the workaround
# imageio-ffmpeg documents for hangs on fork.
os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")


class VideoError(ValueError):
    """A video that cannot be read or written as asked."""


def clip_name(segment_id: str) -> str:
    """The file name of a segment's clip: its id with anything but letters, digits, ``_``, ``.`` and ``-`` made
    ``_`` (ids hold ``:`` and, once imported, ``/``).

    >>> clip_name("lab-a/3f2c9e1d0b7a:10-35")
    'lab-a_3f2c9e1d0b7a_10-35.mp4'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", segment_id) + ".mp4"


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VideoError(f"frames must be a non-empty (T, H, W, 3) array, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8 RGB, got {frames.dtype}")
    return frames


def write_video(frames: np.ndarray, path: str | Path, fps: float = 25.0, crf: int = 20) -> Path:
    """Write RGB ``uint8`` frames ``(T, H, W, 3)`` to an H.264 mp4 (yuv420p, moov atom first) that plays in browsers.

    Odd widths or heights are padded by one edge pixel, as yuv420p needs even sizes.
    """
    frames = _check_frames(frames)
    if fps <= 0:
        raise VideoError(f"fps must be positive, got {fps}")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise VideoError(f"write_video writes .mp4 files, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=None,
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def read_video(
    path: str | Path, fps: float | None = None, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """Read a video file (mp4, webm, anything ffmpeg reads) or a folder of image frames into ``(T, H, W, 3)`` uint8.

    ``start`` / ``end`` (seconds) trim a video file and ``fps`` resamples it; a
    folder of frames has no timing, so it is read whole, in file-name order.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"no video at {path}")
    if path.is_dir():
        if fps is not None or start is not None or end is not None:
            raise VideoError(f"{path} is a folder of frames: fps, start and end apply only to video files")
        return _read_folder(path)
    if start is not None and end is not None and end <= start:
        raise VideoError(f"end ({end}) must be after start ({start})")
    input_params = ["-ss", str(start)] if start is not None else []
    if end is not None:
        input_params += ["-to", str(end)]
    output_params = ["-vf", f"fps={fps}"] if fps is not None else []
    try:
        reader = imageio_ffmpeg.read_frames(
            str(path), pix_fmt="rgb24", input_params=input_params, output_params=output_params
        )
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3) for buf in reader]
    except (RuntimeError, OSError, StopIteration, KeyError) as e:
        raise VideoError(f"could not read video {path}: {e}") from e
    if not frames:
        raise VideoError(f"video {path} has no frames in the requested range")
    return np.stack(frames)


def _read_folder(path: Path) -> np.ndarray:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"))
    if not files:
        raise VideoError(f"folder {path} holds no image frames (.png, .jpg, .jpeg, .bmp, .webp)")
    frames = [np.asarray(iio.imread(f))[..., :3] for f in files]
    if len({f.shape for f in frames}) != 1:
        raise VideoError(f"frames in {path} differ in size")
    return np.stack(frames).astype(np.uint8)


def video_codec(path: str | Path) -> str:
    """The codec name of the first video stream, as ffmpeg reports it (e.g. ``h264``)."""
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    for line in out.splitlines():
        if "Video:" in line:
            return line.split("Video:", 1)[1].strip().split()[0].rstrip(",")
    raise VideoError(f"no video stream in {path}: {out.strip()[-300:]}")


def sample_indices(length: int, n: int) -> np.ndarray:
    """``n`` evenly spaced indices into a sequence of ``length`` items, first and last included (all of them when
    ``n >= length``)."""
    if length <= 0 or n <= 0:
        raise VideoError(f"need a non-empty sequence and n > 0, got length {length}, n {n}")
    if n >= length:
        return np.arange(length)
    return np.round(np.linspace(0, length - 1, n)).astype(int)


def resample(frames: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Frames recorded at ``fps`` taken at ``target_fps`` (nearest frame; never more frames than there are)."""
    frames = _check_frames(frames)
    if fps <= 0 or target_fps <= 0:
        raise VideoError(f"frame rates must be positive, got {fps} and {target_fps}")
    if target_fps >= fps:
        return frames
    n = max(1, int(np.floor((len(frames) - 1) * target_fps / fps)) + 1)
    return frames[np.minimum(np.round(np.arange(n) * fps / target_fps).astype(int), len(frames) - 1)]


def frame_grid(frames: np.ndarray, cols: int = 4, label: bool = True) -> np.ndarray:
    """Frames ``(N, H, W, 3)`` tiled row by row into one image, each numbered in its corner (1 = earliest) when
    ``label``; empty cells of the last row are black."""
    frames = _check_frames(frames)
    cols = max(1, min(cols, len(frames)))
    rows = -(-len(frames) // cols)
    h, w = frames.shape[1:3]
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, frame in enumerate(frames):
        r, c = divmod(k, cols)
        cell = np.ascontiguousarray(frame)
        if label:
            scale = max(0.3, h / 256)
            cv2.putText(
                cell, str(k + 1), (3, int(14 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1
            )
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = cell
    return grid


def side_by_side(
    left: np.ndarray, right: np.ndarray, titles: tuple[str, str] = ("", ""), height: int = 240
) -> np.ndarray:
    """Two clips next to each other, each scaled to ``height`` pixels; the shorter holds its last frame until the
    longer ends; ``titles`` are written at the top of each half."""
    left, right = _check_frames(left), _check_frames(right)
    n = max(len(left), len(right))

    def fit(clip: np.ndarray, title: str) -> np.ndarray:
        width = max(2, round(clip.shape[2] * height / clip.shape[1]))
        out = np.empty((n, height, width, 3), np.uint8)
        for t in range(n):
            frame = cv2.resize(clip[min(t, len(clip) - 1)], (width, height), interpolation=cv2.INTER_AREA)
            if title:
                cv2.putText(frame, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            out[t] = frame
        return out

    return np.concatenate([fit(left, titles[0]), fit(right, titles[1])], axis=2)
