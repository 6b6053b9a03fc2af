"""Feedback sources: anything that answers queries in the feedback store.

A source answers the preference queries it is handed by writing labels to the
store under its own provenance (``source``). Scripted teachers and judges
answer at once (``immediate = True``); the human queue leaves the queries
pending for people in the annotation app, and :meth:`FeedbackSource.wait`
says how long to wait for them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from robofeedback.data.store import FeedbackStore, Query, StoredSegment
from robofeedback.data.trajectory import Segment
from robofeedback.protocols import FeedbackSource


class HumanQueue(FeedbackSource):
    """People answer through the annotation app: queries stay pending in the store until a person labels them.

    With ``wait_seconds`` > 0 the feedback loop waits up to that long for a
    round's queries (polling every ``poll_seconds``); otherwise training goes
    on and answers are used when they arrive.

    >>> import tempfile
    >>> import numpy as np
    >>> from robofeedback.data.trajectory import Trajectory
    >>> folder = tempfile.TemporaryDirectory()
    >>> store = FeedbackStore(f"{folder.name}/feedback.db")
    >>> traj = Trajectory(np.zeros((5, 2)), np.zeros((4, 1)), np.zeros(4), [{}] * 4, np.zeros((5, 3)))
    >>> query = store.add_query("preference", store.add_segments([traj.segment(0, 2), traj.segment(2, 4)]))
    >>> queue = HumanQueue(wait_seconds=0.1, poll_seconds=0.05)
    >>> queue.answer(store, [store.get_query(query)], {})  # leaves the query for people
    >>> queue.wait(store, [query])  # nobody answered within wait_seconds
    0
    >>> _ = store.answer_query(query, "human:alice", value="a")  # what the annotation app does
    >>> queue.wait(store, [query])
    1
    >>> store.close()
    >>> folder.cleanup()
    """

    immediate = False
    needs_frames = True

    def __init__(self, wait_seconds: float = 0.0, poll_seconds: float = 1.0):
        if wait_seconds < 0 or poll_seconds <= 0:
            raise ValueError(f"wait_seconds must be >= 0 and poll_seconds > 0, got {wait_seconds}, {poll_seconds}")
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    def answer(
        self, store: FeedbackStore, queries: Sequence[Query], segments: dict[str, Segment | StoredSegment]
    ) -> None:
        """Nothing to do here: the queries are already in the store for the app to serve."""

    def wait(self, store: FeedbackStore, query_ids: Sequence[str]) -> int:
        """Wait until all of ``query_ids`` are closed or ``wait_seconds`` pass; returns how many are closed."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            closed = super().wait(store, query_ids)
            if closed == len(query_ids) or time.monotonic() >= deadline:
                return closed
            time.sleep(min(self.poll_seconds, max(0.0, deadline - time.monotonic())))
