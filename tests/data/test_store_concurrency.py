"""Many writers at once: processes and threads answering through the store API keep the store's rules (issue 28:
with redundancy 2 and four writers, 2 of 200 queries got 3 labels and one source labelled a query twice)."""

import multiprocessing
import random
import threading
from collections import Counter

import pytest

from robofeedback.bench import app_load
from robofeedback.data.store import FeedbackStore, QueryStateError

PROCESSES = 8
THREADS = 3
QUERIES = 60


def fill(path, queries: int = QUERIES) -> list[str]:
    """A store with ``queries`` preference queries over small segments (the app's load bench's); their ids."""
    store = FeedbackStore(path)
    ids = app_load.fill(store, queries)
    store.close()
    return ids


def writer(path: str, source: str, redundancy: int, seed: int) -> list[tuple[int, str, str]]:
    """Threads of one process answering as ``source`` until no query is pending, half by leasing first and half by
    answering a pending query straight away (as a scripted teacher does); the (label id, query, source) of every
    answer_query that returned."""
    store = FeedbackStore(path)
    committed: list[tuple[int, str, str]] = []
    lock = threading.Lock()

    def answer(k: int) -> None:
        rng = random.Random(seed * 100 + k)
        for _ in range(5000):  # a bound, far above the answers needed
            pending = store.queries(status="pending")
            if not pending:
                return
            if rng.random() < 0.5:
                leased = store.lease_query(source, redundancy=redundancy)
                query_id = leased.id if leased else None
            else:
                query_id = rng.choice(pending).id
            if query_id is None:
                threading.Event().wait(0.002)  # every query left is held by others or labelled by this source
                continue
            try:
                label = store.answer_query(query_id, source, value=rng.choice("ab"), redundancy=redundancy)
            except QueryStateError:
                continue  # held by another, answered meanwhile, or labelled by this source in another thread
            with lock:
                committed.append((label, query_id, source))

    threads = [threading.Thread(target=answer, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    return committed


def hammer(path, redundancy: int, pool) -> dict[str, int]:
    """Run PROCESSES writers (sources shared by some of them, so that one source also races itself across
    processes) on a new store at ``path``; what the store holds after, and the rules broken."""
    queries = fill(path)
    sources = [f"script:w{i % 5}" for i in range(PROCESSES)]
    results = pool.starmap(writer, [(str(path), s, redundancy, i) for i, s in enumerate(sources)])
    committed = [c for result in results for c in result]
    store = FeedbackStore(path)
    labels = store.labels()
    per_query = Counter(lb.query_id for lb in labels)
    per_source = Counter((lb.query_id, lb.source) for lb in labels)
    stored = {(lb.id, lb.query_id, lb.source) for lb in labels}
    return {
        "queries": len(queries),
        "answered": sum(q.status == "answered" for q in store.queries()),
        "labels": len(labels),
        "answers_returned": len(committed),
        "over_redundancy": sum(n > redundancy for n in per_query.values()),
        "source_twice": sum(n > 1 for n in per_source.values()),
        "lost": len(set(committed) - stored),
        "ids_returned_twice": len(committed) - len({c[0] for c in committed}),
    }


@pytest.fixture(scope="module")
def pool():
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        yield pool


@pytest.mark.parametrize("redundancy", [1, 2])
def test_concurrent_writers_keep_redundancy_and_lose_nothing(tmp_path, pool, redundancy):
    found = hammer(tmp_path / "busy.db", redundancy, pool)
    assert found["over_redundancy"] == found["source_twice"] == found["lost"] == found["ids_returned_twice"] == 0
    assert found["answered"] == QUERIES
    assert found["labels"] == found["answers_returned"] == QUERIES * redundancy
