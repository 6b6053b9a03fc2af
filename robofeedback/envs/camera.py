"""Pinhole cameras that map 3-D world points to pixels of the rendered frame.

Every env made by :func:`robofeedback.envs.make` exposes ``env.camera``, a
:class:`Camera` for the view its ``render()`` uses, so that a trajectory's 3-D
path can be drawn onto a frame (trajectory sketches) and a click on a frame can
be turned back into a direction in the world (corrections).

Conventions: ``view`` and ``proj`` are 4x4 OpenGL matrices (camera looks down
its -z axis, normalised device coordinates in [-1, 1]); pixel coordinates follow
OpenCV, with the centre of the top-left pixel at (0, 0), u to the right and v
down, so ``int(round(u))`` is a column index and ``int(round(v))`` a row index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A view (world -> camera) and projection (camera -> clip space) for a ``width`` x ``height`` image."""

    view: np.ndarray
    proj: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("view", "proj"):
            m = np.asarray(getattr(self, name), dtype=np.float64)
            if m.shape != (4, 4):
                raise ValueError(f"Camera.{name} must be a 4x4 matrix, got shape {m.shape}")
            object.__setattr__(self, name, m)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Camera size must be positive, got {self.width}x{self.height}")

    @property
    def position(self) -> np.ndarray:
        """The camera centre in world coordinates."""
        return np.linalg.inv(self.view)[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points ``(N, 3)`` (or one ``(3,)`` point) to pixels.

        Returns ``(uv, depth)``: ``uv`` has shape ``(N, 2)`` in OpenCV pixel
        coordinates, ``depth`` ``(N,)`` is the distance along the viewing axis
        (positive in front of the camera; points behind it get ``nan`` pixels).
        """
        pts = np.asarray(points, dtype=np.float64)
        single = pts.ndim == 1
        pts = np.atleast_2d(pts)
        if pts.shape[-1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
        homo = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        cam = homo @ self.view.T
        depth = -cam[:, 2]
        clip = cam @ self.proj.T
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = clip[:, :2] / clip[:, 3:4]
        u = (ndc[:, 0] + 1.0) * 0.5 * self.width - 0.5
        v = (1.0 - ndc[:, 1]) * 0.5 * self.height - 0.5
        uv = np.stack([u, v], axis=1)
        uv[depth <= 0] = np.nan
        if single:
            return uv[0], depth[0]
        return uv, depth

    def visible(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of the points that land inside the image, in front of the camera."""
        uv, depth = self.project(np.atleast_2d(points))
        inside = (uv[:, 0] >= -0.5) & (uv[:, 0] < self.width - 0.5)
        inside &= (uv[:, 1] >= -0.5) & (uv[:, 1] < self.height - 0.5)
        return inside & (depth > 0)

    @classmethod
    def from_opengl(cls, view: tuple | list, proj: tuple | list, width: int, height: int) -> Camera:
        """From column-major 16-element matrices, as PyBullet's ``compute*Matrix`` functions return them."""
        return cls(
            np.asarray(view, dtype=np.float64).reshape(4, 4).T,
            np.asarray(proj, dtype=np.float64).reshape(4, 4).T,
            width,
            height,
        )

    def opengl_matrices(self) -> tuple[list[float], list[float]]:
        """Column-major 16-element view and projection lists, as PyBullet's ``getCameraImage`` takes them."""
        return list(self.view.T.reshape(-1)), list(self.proj.T.reshape(-1))

    @classmethod
    def from_mujoco_scene(cls, gl_camera, width: int, height: int) -> Camera:
        """From a MuJoCo ``mjvGLCamera``: for mono rendering, ``mjv_averageCamera`` of the scene's two eyes."""
        pos = np.asarray(gl_camera.pos, dtype=np.float64)
        forward = np.asarray(gl_camera.forward, dtype=np.float64)
        up = np.asarray(gl_camera.up, dtype=np.float64)
        right = np.cross(forward, up)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, up, -forward
        view[:3, 3] = -view[:3, :3] @ pos
        near, far = float(gl_camera.frustum_near), float(gl_camera.frustum_far)
        bottom, top = float(gl_camera.frustum_bottom), float(gl_camera.frustum_top)
        half_width = 0.5 * (top - bottom) * width / height
        center = float(gl_camera.frustum_center)
        proj = _frustum(center - half_width, center + half_width, bottom, top, near, far)
        return cls(view, proj, width, height)


def _frustum(left: float, right: float, bottom: float, top: float, near: float, far: float) -> np.ndarray:
    """The OpenGL ``glFrustum`` perspective matrix."""
    m = np.zeros((4, 4))
    m[0, 0] = 2 * near / (right - left)
    m[0, 2] = (right + left) / (right - left)
    m[1, 1] = 2 * near / (top - bottom)
    m[1, 2] = (top + bottom) / (top - bottom)
    m[2, 2] = -(far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = -1.0
    return m
