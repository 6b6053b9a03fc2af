import numpy as np
import pybullet
import pytest

from robofeedback.envs.camera import Camera


def orbit(width=160, height=120, target=(0.2, -0.1, 0.3)):
    view = pybullet.computeViewMatrixFromYawPitchRoll(list(target), 1.5, 30, -40, 0, 2)
    proj = pybullet.computeProjectionMatrixFOV(60, width / height, 0.1, 100)
    return Camera.from_opengl(view, proj, width, height)


def test_target_projects_to_the_image_centre():
    cam = orbit()
    uv, depth = cam.project(np.array([0.2, -0.1, 0.3]))
    assert uv == pytest.approx([79.5, 59.5], abs=1e-4)  # PyBullet matrices are float32
    assert depth == pytest.approx(1.5, rel=1e-5)


def test_camera_position_is_distance_from_target():
    cam = orbit()
    assert np.linalg.norm(cam.position - np.array([0.2, -0.1, 0.3])) == pytest.approx(1.5, rel=1e-5)


def test_point_behind_camera_is_not_visible():
    cam = orbit()
    behind = cam.position + (cam.position - np.array([0.2, -0.1, 0.3]))
    uv, depth = cam.project(behind[None])
    assert depth[0] < 0 and np.isnan(uv).all()
    assert not cam.visible(behind[None])[0]


def test_opengl_matrices_round_trip():
    cam = orbit()
    view, proj = cam.opengl_matrices()
    again = Camera.from_opengl(view, proj, cam.width, cam.height)
    np.testing.assert_allclose(again.view, cam.view)
    np.testing.assert_allclose(again.proj, cam.proj)


def test_bad_matrices_and_points_are_refused():
    with pytest.raises(ValueError, match="4x4"):
        Camera(np.eye(3), np.eye(4), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        Camera(np.eye(4), np.eye(4), 0, 10)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        orbit().project(np.zeros((2, 2)))
