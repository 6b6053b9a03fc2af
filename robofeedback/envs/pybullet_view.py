"""Rendering PyBullet scenes with TinyRenderer through a known orbit camera."""

from __future__ import annotations

import numpy as np

from robofeedback.envs.camera import Camera


def orbit_camera(pybullet, target, settings: dict, width: int, height: int) -> Camera:
    """PyBullet's yaw/pitch orbit camera (z up, degrees) around ``target``."""
    view = pybullet.computeViewMatrixFromYawPitchRoll(
        [float(x) for x in target], settings["distance"], settings["yaw"], settings["pitch"], 0, 2
    )
    proj = pybullet.computeProjectionMatrixFOV(settings["fov"], width / height, 0.1, 100.0)
    return Camera.from_opengl(view, proj, width, height)


def check_settings(camera: dict | None, defaults: dict) -> dict:
    """Merge user camera settings over the defaults, refusing names that are not settings."""
    unknown = set(camera or {}) - set(defaults)
    if unknown:
        raise ValueError(f"unknown camera settings {sorted(unknown)}; expected some of {sorted(defaults)}")
    return {**defaults, **(camera or {})}


def render_pybullet(pybullet, client, camera: Camera, shadows: bool) -> np.ndarray:
    """Render an RGB frame with PyBullet's TinyRenderer through ``camera``."""
    view, proj = camera.opengl_matrices()
    _, _, rgba, _, _ = client.getCameraImage(
        camera.width,
        camera.height,
        viewMatrix=view,
        projectionMatrix=proj,
        shadow=int(shadows),
        renderer=pybullet.ER_TINY_RENDERER,
        flags=pybullet.ER_NO_SEGMENTATION_MASK,
    )
    return np.asarray(rgba, dtype=np.uint8).reshape(camera.height, camera.width, 4)[..., :3].copy()


def segmentation(pybullet, client, camera: Camera) -> np.ndarray:
    """Per-pixel body unique id (``-1`` for background) through ``camera``, for checks of the camera model."""
    view, proj = camera.opengl_matrices()
    _, _, _, _, seg = client.getCameraImage(
        camera.width, camera.height, viewMatrix=view, projectionMatrix=proj, renderer=pybullet.ER_TINY_RENDERER
    )
    seg = np.asarray(seg, dtype=np.int64).reshape(camera.height, camera.width)
    return np.where(seg >= 0, seg & ((1 << 24) - 1), -1)
