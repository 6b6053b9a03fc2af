"""The annotation app: a Gradio UI over the feedback store, served with the segment videos by one FastAPI app.

Tabs: pairwise preferences, rankings of K videos, directional corrections of a safe-MPC robot, factor
rankings (HERON), and the training runs' status; each is a module in :mod:`robofeedback.apps.tabs`, built on the
shell in :mod:`robofeedback.apps.shell` (the sign-in part and what the tabs share). Every button calls a named
Gradio endpoint (``/answer_preference_a``, ``/next_ranking``, ...; listed on the app's "Use via API" page), the
same one a program calls with ``gradio_client``: the ``--auto`` teacher answers that way.

Start it with ``robofeedback app --store runs/feedback.db --port 7860``, or from Python::

    with AppServer("runs/feedback.db", port=7860) as server:
        print(server.url)
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from robofeedback.apps.service import AnnotationService, AppConfig, is_loopback
from robofeedback.apps.shell import build_shell
from robofeedback.apps.tabs import corrections, factors, preferences, rankings, training
from robofeedback.data.store import FeedbackStore

log = logging.getLogger("robofeedback.app")

# Keyboard shortcuts (ignored while typing in a text box) and keeping the videos of a query in step.
HEAD = """
<script>
(() => {
  const keys = {"1": "pref-a", "2": "pref-b", "3": "pref-equal", "0": "pref-skip",
                "ArrowLeft": "corr-left", "ArrowRight": "corr-right", "ArrowUp": "corr-up",
                "ArrowDown": "corr-down", "PageUp": "corr-raise", "PageDown": "corr-lower"};
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    const id = keys[event.key];
    const button = id && document.getElementById(id);
    if (button && button.offsetParent !== null && !button.disabled) { event.preventDefault(); button.click(); }
  });
  setInterval(() => {
    document.querySelectorAll(".rf-videos").forEach((box) => {
      const videos = [...box.querySelectorAll("video")];
      if (videos.length < 2) return;
      const lead = videos[0];
      videos.slice(1).forEach((video) => {
        if (Math.abs(video.currentTime - lead.currentTime) > 0.15) video.currentTime = lead.currentTime;
        if (video.paused !== lead.paused) (lead.paused ? video.pause() : video.play().catch(() => {}));
      });
    });
  }, 250);
})();
</script>
"""

CSS = """
.rf-videos {display: grid; gap: 12px; align-items: start;}
.rf-videos figure {margin: 0; text-align: center;}
.rf-videos video {width: 100%; max-height: 260px; background: #111; border-radius: 6px;}
.rf-videos figcaption {font-weight: 600; margin-top: 4px;}
.rf-runs table {width: 100%;}
"""


def build_blocks(service: AnnotationService) -> gr.Blocks:
    """The Gradio UI over ``service``: the shell (the header and sign-in part) and its tabs, one module each."""
    with gr.Blocks(title="robofeedback annotation") as blocks:
        shell = build_shell(blocks, service)
        with gr.Tabs():
            for tab in (preferences, rankings, corrections, factors, training):
                tab.build_tab(shell)
    return blocks


class _RequireAnnotator:
    """ASGI middleware: every request but ``/health`` carries a credential the store issued (HTTP Basic
    ``name:secret`` from a browser's login, or ``Bearer <secret>`` from a program), or comes to an app that runs open
    without one; others get 401 (with the header that makes a browser ask for the name and secret)."""

    def __init__(self, app, service: AnnotationService):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1") or None
        if self.service.authenticate(authorization) if authorization else self.service.open:
            return await self.app(scope, receive, send)
        log.info("refused %s %s: %s", scope["type"], scope["path"], "bad credentials" if authorization else "no login")
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = b"log in with the name and secret the store issued you (robofeedback annotators add NAME)"
        headers = [
            (b"www-authenticate", b'Basic realm="robofeedback annotation", charset="UTF-8"'),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def build_app(service: AnnotationService) -> FastAPI:
    """The FastAPI app: the media routes (segment videos, correction frames, evaluation videos) and the UI, behind
    the annotators' login."""
    app = FastAPI(title="robofeedback annotation")
    app.add_middleware(_RequireAnnotator, service=service)

    def media(find, *args) -> FileResponse:
        try:
            return FileResponse(find(*args))
        except FileNotFoundError as e:
            raise HTTPException(status_code=404, detail=str(e)) from None

    @app.get("/media/segment/{segment_id}")
    def segment_video(segment_id: str):
        return media(service.segment_video, segment_id)

    @app.get("/media/query/{query_id}/frame")
    def query_frame(query_id: str):
        return media(service.query_frame, query_id)

    @app.get("/media/run/{run}/eval")
    def eval_video(run: str):
        return media(service.eval_video, run)

    @app.get("/health")
    def health():
        return {"ok": True, "store": repr(service.store)}

    return gr.mount_gradio_app(app, build_blocks(service), path="/", head=HEAD, css=CSS, footer_links=["api"])


class _ShutdownCancellations(logging.Filter):
    """While the server stops: drops uvicorn's report of the requests it cancels, with their tracebacks. Open
    browser tabs and API clients hold heartbeat streams that never end by themselves, so stopping cancels them;
    that is the expected end of a stream, not an error."""

    def __init__(self, server: uvicorn.Server):
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.server.should_exit:
            return True
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return not (cancelled or "timeout graceful shutdown exceeded" in record.getMessage())


class AppServer:
    """The app on ``host:port`` (port 0: a free one) in a background thread; a context manager."""

    def __init__(
        self,
        store: FeedbackStore | str | Path,
        host: str = "127.0.0.1",
        port: int = 7860,
        config: AppConfig | None = None,
    ):
        self.service = AnnotationService(store, config, open_allowed=is_loopback(host))
        self.host, self.port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def access(self) -> str:
        """Who may label, in words (printed when the app starts)."""
        if self.service.open:
            return (
                "open: no annotator is registered, and the app listens on this machine only, so a typed name is "
                "recorded unchecked (robofeedback annotators add NAME issues logins)"
            )
        return f"login: {len(self.service.registry.humans())} registered annotator(s); programs use their own secret"

    def start(self, timeout: float = 60.0) -> AppServer:
        if not self.service.open_allowed and not self.service.registry.humans():
            raise RuntimeError(
                f"refusing to serve on {self.host}, which other machines can reach, with no annotator registered: "
                "add them first (robofeedback annotators add NAME --store ...), and put the app behind a TLS proxy "
                "(see the README), or bind it to 127.0.0.1"
            )
        # Open browser tabs hold streaming connections: stop waits for them two seconds at most.
        config = uvicorn.Config(
            build_app(self.service),
            host=self.host,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._quiet_shutdown = _ShutdownCancellations(self._server)
        logging.getLogger("uvicorn.error").addFilter(self._quiet_shutdown)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="robofeedback-app")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the annotation app did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        if self.port == 0:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._server is not None:
            logging.getLogger("uvicorn.error").removeFilter(self._quiet_shutdown)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C)."""
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
