import numpy as np
import pybullet
import pytest

from robofeedback.data.rollout import collect
from robofeedback.data.sketch import BROWN, YELLOW, sketch, sketch_segment
from robofeedback.envs import make
from robofeedback.envs.camera import Camera

NEAR = 1.6  # how far from the path a one-pixel anti-aliased line may colour pixel centres


def orbit(width=160, height=120, target=(0.0, 0.0, 0.0)):
    view = pybullet.computeViewMatrixFromYawPitchRoll(list(target), 1.5, 30, -40, 0, 2)
    proj = pybullet.computeProjectionMatrixFOV(60, width / height, 0.1, 100)
    return Camera.from_opengl(view, proj, width, height)


def helix(n=40):
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([0.3 * np.cos(t), 0.3 * np.sin(t), 0.1 * t], axis=1)


def distance_to_polyline(pixels: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Distance of each pixel centre (rows of (x, y)) to the polyline through ``uv``."""
    p, q = uv[:-1][None], uv[1:][None]
    d = q - p
    t = np.clip(((pixels[:, None] - p) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
    nearest = p + t[..., None] * d
    return np.linalg.norm(pixels[:, None] - nearest, axis=-1).min(axis=1)


def drawn_pixels(before: np.ndarray, after: np.ndarray, threshold: int = 30) -> np.ndarray:
    """Pixels whose colour the sketch changed visibly (more than the faintest anti-aliasing fringe)."""
    rows, cols = np.nonzero(np.abs(after.astype(int) - before.astype(int)).sum(-1) > threshold)
    return np.stack([cols, rows], axis=1).astype(np.float64)


def test_drawn_pixels_lie_along_the_projected_path():
    camera, path = orbit(), helix()
    frame = np.zeros((120, 160, 3), np.uint8)
    out = sketch(frame, path, camera, width=1)
    uv, _ = camera.project(path)
    pixels = drawn_pixels(frame, out)
    assert len(pixels) > 50
    assert distance_to_polyline(pixels, uv).max() <= NEAR
    # and the whole path is drawn: every point along it has a drawn pixel within a pixel
    samples = np.concatenate([np.linspace(a, b, 5) for a, b in zip(uv[:-1], uv[1:], strict=True)])
    nearest = np.linalg.norm(samples[:, None] - pixels[None], axis=-1).min(axis=1)
    assert nearest.max() <= 1.0
    assert np.array_equal(frame, np.zeros_like(frame))  # the input frame is left as it was


def test_colour_runs_from_yellow_to_brown():
    camera = orbit()
    path = np.stack([np.linspace(-0.4, 0.4, 30), np.zeros(30), np.zeros(30)], axis=1)
    out = sketch(np.zeros((120, 160, 3), np.uint8), path, camera, width=3)
    uv, _ = camera.project(path)
    first, last = np.round(uv[1]).astype(int), np.round(uv[-2]).astype(int)
    start, end = out[first[1], first[0]].astype(int), out[last[1], last[0]].astype(int)
    assert np.abs(start - np.array(YELLOW)).max() <= 20
    assert np.abs(end - np.array(BROWN)).max() <= 20


def test_parts_outside_or_behind_the_camera_are_clipped():
    camera = orbit()
    frame = np.full((120, 160, 3), 255, np.uint8)
    behind = camera.position + 2 * (camera.position - np.zeros(3))
    forward = -camera.position / np.linalg.norm(camera.position)
    far = camera.position + 0.11 * forward + 2.0 * np.cross(forward, [0, 0, 1])  # just in front, far to the side
    path = np.stack([np.zeros(3), far, behind, np.array([0.2, 0.1, 0.0])])
    out = sketch(frame, path, camera, width=1)
    uv, _ = camera.project(path)
    pixels = drawn_pixels(frame, out)
    assert len(pixels) > 0
    visible = np.stack([uv[0], uv[1]])  # only the first step reaches the image; the steps via `behind` are dropped
    assert distance_to_polyline(pixels, visible).max() <= NEAR


def test_frames_of_another_size_are_drawn_to_scale():
    camera, path = orbit(), helix()
    out = sketch(np.zeros((240, 320, 3), np.uint8), path, camera, width=1)
    uv, _ = camera.project(path)
    scaled = 2 * uv + 0.5  # pixel centres of the doubled image
    assert distance_to_polyline(drawn_pixels(np.zeros_like(out), out), scaled).max() <= NEAR


def test_bad_input_is_refused():
    camera = orbit()
    with pytest.raises(ValueError, match="frame"):
        sketch(np.zeros((120, 160), np.uint8), helix(), camera)
    with pytest.raises(ValueError, match="path_3d"):
        sketch(np.zeros((120, 160, 3), np.uint8), np.zeros((5, 2)), camera)
    with pytest.raises(ValueError, match="start_color"):
        sketch(np.zeros((120, 160, 3), np.uint8), helix(), camera, start_color=(300, 0, 0))
    with pytest.raises(ValueError, match="width"):
        sketch(np.zeros((120, 160, 3), np.uint8), helix(), camera, width=0)


@pytest.mark.parametrize("spec", ["panda:PandaPush-v3", "metaworld:drawer-open", "bullet:HalfCheetahBulletEnv-v0"])
def test_sketches_on_env_renders_follow_the_agent(spec):
    env = make(spec, seed=0, render_size=96)
    trajectory = collect(env, None, n_steps=25, render=True, seed=0)[0]
    segment = trajectory.segment(0, len(trajectory))
    out = sketch_segment(segment, env.camera_at, width=1)
    camera = env.camera_at(segment.agent_path[-1])
    uv, _ = camera.project(segment.agent_path)
    distances = distance_to_polyline(drawn_pixels(segment.frames[-1], out), uv)
    assert len(distances) > 0
    assert distances.max() <= NEAR
