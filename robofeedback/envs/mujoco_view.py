"""Headless MuJoCo rendering with a known camera."""

from __future__ import annotations

import atexit
import importlib.util
import weakref

import mujoco  # robofeedback.envs, imported first as this module's package, set MUJOCO_GL
import numpy as np

from robofeedback.envs.camera import Camera

_LIVE_VIEWS: weakref.WeakSet[MujocoView] = weakref.WeakSet()


def _load_triton_before_llvmpipe() -> None:
    """Load triton, if installed, before the first EGL context.

    torch imports triton lazily (e.g. when an optimizer is built); when triton's
    bundled LLVM loads after the LLVM that Mesa's llvmpipe brought in for EGL
    rendering, the process segfaults. Loaded in the other order, both work.
    """
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


class MujocoView:
    """Renders a MuJoCo model through a free orbit camera or a named model camera, and reports that camera.

    ``fast=True`` switches off shadows, reflections and the skybox, which
    makes software (llvmpipe) rendering three to four times faster.
    """

    def __init__(
        self,
        model,
        width: int,
        height: int,
        camera: str | dict,
        fast: bool = True,
    ):
        self.model = model
        self.width, self.height = width, height
        self.fast = fast
        offscreen = model.vis.global_
        if width > offscreen.offwidth or height > offscreen.offheight:
            offscreen.offwidth = max(width, offscreen.offwidth)
            offscreen.offheight = max(height, offscreen.offheight)
        self._cam = mujoco.MjvCamera()
        self._track_body: int | None = None
        self._lookat_offset = np.zeros(3)
        if isinstance(camera, str):
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cam_id < 0:
                names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
                raise ValueError(f"unknown camera {camera!r}; this model has {names} or a dict of orbit settings")
            self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._cam.fixedcamid = cam_id
        else:
            unknown = set(camera) - {"lookat", "distance", "azimuth", "elevation", "track_body"}
            if unknown:
                raise ValueError(
                    f"unknown camera settings {sorted(unknown)}; "
                    "expected lookat, distance, azimuth, elevation, track_body"
                )
            self._cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            self._cam.lookat[:] = camera.get("lookat", (0.0, 0.0, 0.0))
            self._cam.distance = camera.get("distance", 2.0)
            self._cam.azimuth = camera.get("azimuth", 90.0)
            self._cam.elevation = camera.get("elevation", -30.0)
            self._track_body = camera.get("track_body")
            if self._track_body is not None:
                self._lookat_offset = np.array(camera.get("lookat", (0.0, 0.0, 0.0)), dtype=np.float64)
        self._option = mujoco.MjvOption()
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        self._renderer = None
        _LIVE_VIEWS.add(self)

    def _update(self, data) -> None:
        if self._cam.type == mujoco.mjtCamera.mjCAMERA_FREE and self._track_body is not None:
            self._cam.lookat[:] = data.xpos[self._track_body] + self._lookat_offset

    def camera(self, data) -> Camera:
        """The camera for the current state (GL-free: only MuJoCo's scene update runs)."""
        self._update(data)
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        # Mono rendering looks through the average of the two stereo eye cameras.
        eye = mujoco.mjv_averageCamera(self._scene.camera[0], self._scene.camera[1])
        return Camera.from_mujoco_scene(eye, self.width, self.height)

    def render(self, data) -> np.ndarray:
        if self._renderer is None:
            _load_triton_before_llvmpipe()
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            _close_views_at_exit()
        self._update(data)
        self._renderer.update_scene(data, camera=self._cam)
        if self.fast:
            flags = self._renderer.scene.flags
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
            ):
                flags[flag] = 0
        return self._renderer.render().copy()

    def segmentation(self, data) -> np.ndarray:
        """Per-pixel ``(object id, object type)`` of what is visible, for checks of the camera model."""
        _load_triton_before_llvmpipe()
        renderer = mujoco.Renderer(self.model, self.height, self.width)
        try:
            renderer.enable_segmentation_rendering()
            self._update(data)
            renderer.update_scene(data, camera=self._cam)
            return renderer.render().copy()
        finally:
            renderer.close()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _close_views() -> None:
    for view in list(_LIVE_VIEWS):
        view.close()


def _close_views_at_exit() -> None:
    """Close every view's renderer at exit, before MuJoCo terminates the EGL display.

    MuJoCo's first EGL context registers ``eglTerminate`` with atexit; a context destroyed after that (by the
    garbage collector at interpreter teardown, or by a handler registered earlier, since atexit runs its handlers
    last-registered first) fails with ``EGL_NOT_INITIALIZED`` and prints a traceback. So this handler is
    (re-)registered whenever a renderer is made, which puts it after ``eglTerminate`` and makes it run before.
    """
    atexit.unregister(_close_views)
    atexit.register(_close_views)
