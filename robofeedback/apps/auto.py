"""A scripted teacher that answers the app's preference queries over HTTP, through the endpoints the browser's
buttons call (``/next_preference``, ``/answer_preference_<a|b|equal|skip>``): ``robofeedback demo --auto``."""

from __future__ import annotations

import threading
from pathlib import Path

from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore
from robofeedback.feedback.teachers import Teacher, make_teacher


class AutoAnnotator:
    """Answers every preference query the app serves it with ``teacher``'s label, as ``teacher.source``.

    The teacher decides from the segments' env rewards, read from the store; the answer travels as a person's
    does, over HTTP to the app at ``url``, with the program's own credential (``secret``; by default a new one that
    the store issues for ``teacher.source``, replacing any earlier one), so that no typed name can claim its source.
    """

    def __init__(
        self,
        url: str,
        store: FeedbackStore | str | Path,
        teacher: Teacher | str = "oracle",
        poll_seconds: float = 0.5,
        seed: int = 0,
        secret: str | None = None,
    ):
        from gradio_client import Client

        self.store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        self.teacher = make_teacher(teacher, seed=seed) if isinstance(teacher, str) else teacher
        if secret is None:
            _, secret = AnnotatorRegistry(self.store).add(self.teacher.source, program=True, replace=True)
        self.client = Client(url, verbose=False, headers={"Authorization": f"Bearer {secret}"})
        self.poll_seconds = poll_seconds
        self.answered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def answer_pending(self) -> int:
        """Answer queries until the app has none for us; returns how many were answered."""
        name = self.teacher.source
        n = 0
        query, _, _ = self.client.predict(name, api_name="/next_preference")
        while query.get("id"):
            a, b = self.store.get_segments(query["segment_ids"])
            value = self.teacher.label(a, b)
            query, _, _, _ = self.client.predict(name, query["id"], "", api_name=f"/answer_preference_{value}")
            n += 1
        self.answered += n
        return n

    def start(self) -> AutoAnnotator:
        """Answer in a background thread, polling every ``poll_seconds``, until :meth:`stop`."""

        def loop():
            while not self._stop.is_set():
                self.answer_pending()
                self._stop.wait(self.poll_seconds)

        self._thread = threading.Thread(target=loop, daemon=True, name="robofeedback-auto")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the client's connections (an open stream would hold the app's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.close()
