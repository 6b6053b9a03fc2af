"""The annotation app under load: many annotators answering preference queries at once, over real HTTP.

Each annotator is a registered person (a login the store issued) and a thread with its own ``gradio_client.Client``,
sending HTTP Basic ``name:secret`` as a browser does (and typing another annotator's name, which the app must
ignore). It loops through the endpoints the app's buttons call: ``/next_preference``, then
``/answer_preference_<a|b|equal|skip>`` with a random value (the answer returns the next query it holds), until the
app serves it none. Each answer call is timed. Afterwards the store is checked against
what the app told each client: an answer that returned without error and is not in the store is lost; a stored label
no client was told it gave, under its own login, is unacknowledged; no source may label a query twice, and no query
may hold more labels than its redundancy. An answer the app refuses (the query was closed meanwhile: another
annotator answered "can't tell", which closes it at any redundancy) is counted, not treated as a failure.

Run ``python -m robofeedback.bench.app_load --annotators 1 20 --redundancy 1 2``: it prints a table and writes the
figures as JSON to ``runs/bench/app_load.json``. The app and the clients share one process (and its GIL), as in
``robofeedback.bench.perf``'s ``app_roundtrip``, so the latencies include the clients' own work.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from robofeedback.apps.annotate import AppServer
from robofeedback.apps.service import PREFERENCE_CHOICES, AppConfig
from robofeedback.config import run_metadata
from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore
from robofeedback.data.trajectory import Trajectory

RUN = "load"
SKIP_RATE = 0.1  # how often an annotator answers "can't tell"; the rest is a, b or equal alike
COLUMNS = {  # the printed table: column -> key of a result
    "annotators": "annotators",
    "redundancy": "redundancy",
    "queries": "queries",
    "labels": "labels",
    "lost": "lost",
    "duplicates": "duplicates",
    "over redundancy": "over_redundancy",
    "p50 ms": "p50_ms",
    "p95 ms": "p95_ms",
    "wall s": "wall_s",
}


def basic(name: str, secret: str) -> str:
    """An HTTP Basic ``Authorization`` header, as a browser sends a login."""
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()


def fill(store: FeedbackStore, queries: int, seed: int = 0) -> list[str]:
    """``queries`` preference queries over one-step segments of a random trajectory (no video files: the app
    serves a query without them); their ids, oldest first."""
    rng = np.random.default_rng(seed)
    steps = queries + 1
    trajectory = Trajectory(
        obs=rng.normal(size=(steps + 1, 3)),
        actions=rng.normal(size=(steps, 2)),
        env_rewards=rng.normal(size=steps),
        infos=[{}] * steps,
        agent_path=rng.normal(size=(steps + 1, 3)),
        env_spec="load:pairs",
        seed=seed,
    )
    ids = store.add_segments([trajectory.segment(i, i + 1) for i in range(steps)], run=RUN)
    return [store.add_query("preference", [ids[i], ids[i + 1]], run=RUN) for i in range(queries)]


class _Annotator:
    """One simulated person: a login, an HTTP client of their own, and what the app told them. Into the name box
    they type ``typed``, another annotator's name, which the app must ignore for the login's."""

    def __init__(self, url: str, name: str, source: str, secret: str, typed: str, seed: int):
        from gradio_client import Client

        self.name, self.source, self.typed = name, source, typed
        headers = {"Authorization": basic(name, secret)}
        # a browser waits for an answer; gradio_client's requests give up after 5 s, which a busy machine exceeds
        self.client = Client(url, verbose=False, headers=headers, httpx_kwargs={"timeout": 60})
        self.rng = random.Random(seed)
        self.answered: list[str] = []  # query ids whose answer returned without error
        self.latencies: list[float] = []  # seconds per answer call, refused ones too
        self.refused: list[str] = []  # the app's reasons
        self.errors: list[str] = []  # anything else that went wrong

    def value(self) -> str:
        if self.rng.random() < SKIP_RATE:
            return "skip"
        return self.rng.choice([v for v in PREFERENCE_CHOICES if v != "skip"])

    def work(self, max_calls: int) -> None:
        """Answer until the app serves no query (or for ``max_calls`` rounds, a bound far above the work)."""
        from gradio_client.exceptions import AppError

        query = None
        for _ in range(max_calls):
            try:
                if query is None or not query.get("id"):
                    query = self.client.predict(self.typed, api_name="/next_preference")[0]
                    if not query.get("id"):
                        return
                query_id = query["id"]
                start = time.perf_counter()
                try:
                    query = self.client.predict(
                        self.typed, query_id, "", api_name=f"/answer_preference_{self.value()}"
                    )[0]
                except AppError as e:
                    self.refused.append(str(e))
                    query = None
                    continue
                finally:
                    self.latencies.append(time.perf_counter() - start)
                self.answered.append(query_id)
            except Exception as e:  # the run goes on; the error is reported
                self.errors.append(f"{type(e).__name__}: {e}")
                query = None
        self.errors.append(f"stopped after {max_calls} rounds, still served queries")


def check(store: FeedbackStore, ids: list[str], redundancy: int, answered: dict[str, list[str]]) -> dict[str, int]:
    """The store after a run against what the app told each source (``answered``: source -> query ids whose answer
    returned): labels, lost and unacknowledged ones, a source twice on a query, queries over their redundancy, and
    queries left short of it (pending, or answered with fewer labels; a skipped one holds one "can't tell")."""
    labels = store.labels(run=RUN)
    stored = Counter((lb.query_id, lb.source) for lb in labels)
    told = {(query_id, source) for source, query_ids in answered.items() for query_id in query_ids}
    per_query = Counter(lb.query_id for lb in labels)
    skips = Counter(lb.query_id for lb in labels if lb.value == "skip")
    queries = store.queries(run=RUN)
    short = 0
    for query in queries:
        n = per_query[query.id]
        if query.status == "answered":
            short += n < redundancy or skips[query.id] > 0
        elif query.status == "skipped":
            short += skips[query.id] != 1
        else:
            short += 1
    return {
        "queries": len(ids),
        "labels": len(labels),
        "answers_returned": sum(len(q) for q in answered.values()),
        "lost": len(told - set(stored)),
        "unacknowledged": len(set(stored) - told),
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "over_redundancy": sum(n > redundancy for n in per_query.values()),
        "short_of_redundancy": short,
        "skipped_queries": sum(q.status == "skipped" for q in queries),
    }


def run_load(annotators: int, queries: int, redundancy: int, seed: int = 0) -> dict[str, Any]:
    """Start the app on a free loopback port over a fresh SQLite store with ``queries`` preference queries and
    ``annotators`` registered people, let them all answer at once at ``redundancy``, and check the store."""
    with tempfile.TemporaryDirectory(prefix="robofeedback-load-") as folder:
        store = FeedbackStore(Path(folder) / "feedback.db")
        ids = fill(store, queries, seed)
        registry = AnnotatorRegistry(store)
        width = len(str(annotators))
        logins = [(f"annotator-{i:0{width}d}", *registry.add(f"annotator-{i:0{width}d}")) for i in range(annotators)]
        with AppServer(store, port=0, config=AppConfig(run=RUN, redundancy=redundancy)) as server:
            people = [
                _Annotator(server.url, name, source, secret, logins[(i + 1) % annotators][0], seed * 1000 + i)
                for i, (name, source, secret) in enumerate(logins)
            ]
            threads = [
                threading.Thread(target=p.work, args=(2 * queries + 10,), name=p.name, daemon=True) for p in people
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            for p in people:
                p.client.close()
        found = check(store, ids, redundancy, {p.source: p.answered for p in people})
        sources = {lb.source for lb in store.labels(run=RUN)}
        store.close()
    latencies = np.array([t for p in people for t in p.latencies]) * 1000
    refused = [reason for p in people for reason in p.refused]
    return {
        "annotators": annotators,
        "redundancy": redundancy,
        **found,
        "sources_not_registered": len(sources - {p.source for p in people}),
        "answer_calls": len(latencies),
        "refused": len(refused),
        "refused_reasons": dict(Counter(re.sub(r"\b[0-9a-f]{32}\b", "<id>", r) for r in refused)),
        "errors": [e for p in people for e in p.errors],
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "p95_ms": round(float(np.percentile(latencies, 95)), 1) if len(latencies) else None,
        "max_ms": round(float(latencies.max()), 1) if len(latencies) else None,
        "wall_s": round(wall, 2),
        "answers_per_s": round(len(latencies) / wall, 1),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--redundancy", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queries", type=int, default=100, help="preference queries per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench/app_load.json")
    args = parser.parse_args(argv)

    print(f"\nthe app under load: {args.queries} preference queries per run, answered over HTTP")
    print("".join(f"{c:>16}" for c in COLUMNS))
    rows = []
    for redundancy in args.redundancy:
        for annotators in args.annotators:
            row = run_load(annotators, args.queries, redundancy, args.seed)
            rows.append(row)
            print("".join(f"{'' if row[k] is None else row[k]:>16}" for k in COLUMNS.values()), flush=True)
            for extra in ("unacknowledged", "short_of_redundancy", "sources_not_registered", "refused_reasons"):
                if row[extra]:
                    print(f"  {extra.replace('_', ' ')}: {row[extra]}")
            if annotators < redundancy:
                print(f"  ({annotators} annotator(s) cannot give a query {redundancy} labels)")
            for error in row["errors"][:5]:
                print(f"  error: {error}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "machine": {"cpus": os.cpu_count()},
                "code": run_metadata(),
                "settings": {"queries": args.queries, "seed": args.seed, "skip_rate": SKIP_RATE},
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")
    return rows


if __name__ == "__main__":
    main()
