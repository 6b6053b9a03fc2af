"""Video files and frame folders: written as H.264, read back, trimmed and resampled; clear errors."""

import imageio.v3 as iio
import numpy as np
import pytest

from robofeedback.data import VideoError, read_video, video_codec, write_video


def test_video_is_h264_and_reads_back(reach_trajectories, tmp_path):
    frames = np.concatenate([t.frames for t in reach_trajectories])
    path = write_video(frames, tmp_path / "v.mp4", fps=20)
    assert video_codec(path) == "h264"
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 6  # lossy, but the same pictures


def test_video_odd_sizes_trimming_and_resampling(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, size=(50, 1, 1, 3), dtype=np.uint8), 15, axis=1)
    frames = np.repeat(frames, 21, axis=2)  # 15 x 21: both odd
    path = write_video(frames, tmp_path / "odd.mp4", fps=25)
    assert read_video(path).shape == (50, 16, 22, 3)
    assert len(read_video(path, fps=5)) == 10
    assert len(read_video(path, start=0.4, end=1.2)) == 20


def test_frame_folders_read_in_name_order(tmp_path):
    for i, value in enumerate([30, 90, 150]):
        iio.imwrite(tmp_path / f"{i:02d}.png", np.full((8, 8, 3), value, dtype=np.uint8))
    frames = read_video(tmp_path)
    assert frames.shape == (3, 8, 8, 3) and list(frames[:, 0, 0, 0]) == [30, 90, 150]
    with pytest.raises(VideoError, match="folder"):
        read_video(tmp_path, fps=2)


def test_bad_videos_give_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="no video at"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="could not read"):
        read_video(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        read_video(tmp_path / "empty")
    with pytest.raises(VideoError, match="non-empty"):
        write_video(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "x.mp4")
    with pytest.raises(VideoError, match="uint8"):
        write_video(np.zeros((2, 8, 8, 3)), tmp_path / "x.mp4")
    with pytest.raises(VideoError, match=".mp4"):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "x.avi")
