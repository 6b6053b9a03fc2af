"""The feedback store: segments, queries and labels of every kind, in a real database.

SQLite by default (one file, WAL journal), written through SQLAlchemy Core so
that a PostgreSQL URL (``postgresql+psycopg://user@host/db``) works unchanged.
Every write is its own transaction: a process killed mid-loop loses at most the
label it was writing, and a write that fails validation changes nothing.

Label kinds and their values:

- ``preference``: two segments and ``"a"`` (first better), ``"b"``, ``"equal"`` or ``"skip"``;
- ``ranking``: K segments and a full ``order`` (best first) or a ``best`` and a ``worst``;
- ``correction``: a ``state`` vector, a ``direction`` vector and a time index ``t`` (safe MPC);
- ``factor_ranking``: a task's reward factors in ``order`` of importance, with optional
  ``signs`` and ``margins``; one per task and source (a newer one replaces the older).

Every label records its ``source`` (``human:<name>``, ``vlm:<model>``, ``llm:<model>``,
``script:<teacher>``), its time and an optional free-text note. Each run also keeps a status (steps, the
latest evaluation and its video, the reward model's agreement with each source) that its trainer writes and the
annotation app shows.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from robofeedback.data.trajectory import Obs, Segment

LABEL_KINDS = ("preference", "ranking", "correction", "factor_ranking", "violation")
QUERY_KINDS = ("preference", "ranking", "correction", "factor_ranking")  # a violation is seen, never asked for
PREFERENCE_VALUES = ("a", "b", "equal", "skip")
QUERY_STATUSES = ("pending", "answered", "skipped", "expired")
SOURCE_PATTERN = re.compile(r"^(human|vlm|llm|script):[^\s:][^\s]*$")


class StoreError(ValueError):
    """Input the feedback store refuses; nothing was written."""


class UnknownSegmentError(StoreError, KeyError):
    """A label or query names a segment the store does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class QueryStateError(StoreError):
    """A query that cannot take this answer: unknown, already answered, skipped or expired."""


metadata = sa.MetaData()

segments_table = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("run", sa.String(200), nullable=False, index=True),
    sa.Column("env_spec", sa.String(200), nullable=False),
    sa.Column("start_step", sa.Integer, nullable=False),
    sa.Column("end_step", sa.Integer, nullable=False),
    sa.Column("obs", sa.LargeBinary, nullable=False),
    sa.Column("actions", sa.LargeBinary, nullable=False),
    sa.Column("env_rewards", sa.LargeBinary, nullable=False),
    sa.Column("agent_path", sa.LargeBinary, nullable=True),
    sa.Column("factors", sa.LargeBinary, nullable=True),
    sa.Column("frames_path", sa.String(500), nullable=True),
    sa.Column("video_path", sa.String(500), nullable=True),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

queries_table = sa.Table(
    "queries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("segment_ids", sa.JSON, nullable=False),
    sa.Column("assignee", sa.String(200), nullable=True),
    sa.Column("status", sa.String(10), nullable=False, index=True),
    sa.Column("leased_to", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Double, nullable=True),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("closed_at", sa.Double, nullable=True),
)

labels_table = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("query_id", sa.String(64), sa.ForeignKey("queries.id"), nullable=True),
    sa.Column("segment_ids", sa.JSON, nullable=False),
    sa.Column("value", sa.String(20), nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("source", sa.String(200), nullable=False, index=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run", sa.String(200), primary_key=True),
    sa.Column("status", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

TABLES = {"segments": segments_table, "queries": queries_table, "labels": labels_table, "runs": runs_table}


def _pack(value: Obs | None) -> bytes | None:
    """Arrays (or dicts of arrays) to npz bytes, exactly."""
    if value is None:
        return None
    arrays = (
        {f"k/{k}": np.asarray(v) for k, v in value.items()} if isinstance(value, dict) else {"v": np.asarray(value)}
    )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _unpack(blob: bytes | None) -> Obs | None:
    if blob is None:
        return None
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        if "v" in data.files:
            return data["v"]
        return {k[2:]: data[k] for k in data.files}


@dataclass
class StoredSegment:
    """A segment as the store holds it: the arrays of a :class:`~robofeedback.data.trajectory.Segment` without
    its trajectory, plus where its frames or video are."""

    id: str
    run: str
    env_spec: str
    start_step: int
    end_step: int
    obs: Obs
    actions: np.ndarray
    env_rewards: np.ndarray
    agent_path: np.ndarray | None
    factors: dict[str, np.ndarray]
    frames_path: str | None
    video_path: str | None
    meta: dict[str, Any]
    created_at: float

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def env_return(self) -> float:
        return float(np.sum(self.env_rewards))


@dataclass
class Query:
    """A request for feedback on some segments, and where it stands."""

    id: str
    run: str
    kind: str
    segment_ids: list[str]
    status: str
    assignee: str | None
    leased_to: str | None
    lease_until: float | None
    meta: dict[str, Any]
    created_at: float
    closed_at: float | None


@dataclass
class Label:
    """One piece of feedback with its provenance."""

    id: int
    run: str
    kind: str
    segment_ids: list[str]
    value: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    note: str | None = None
    query_id: str | None = None
    created_at: float = 0.0


def check_source(source: str) -> str:
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source):
        raise StoreError(
            f"source must look like human:<name>, vlm:<model>, llm:<model> or script:<teacher>, got {source!r}"
        )
    return source


def _vector(value: Any, name: str, nonzero: bool = False) -> list[float]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise StoreError(f"{name} must be a 1-D list of numbers, got {value!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise StoreError(f"{name} must be a non-empty 1-D list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise StoreError(f"{name} must hold finite numbers, got {array.tolist()}")
    if nonzero and not np.linalg.norm(array) > 0:
        raise StoreError(f"{name} must not be the zero vector")
    return array.tolist()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # the app and a trainer write to one file
    # The switch to WAL (kept in the file) needs the database to itself and does not wait for it: connections
    # opening a new file together retry until one of them has switched it.
    for attempt in range(100):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 99:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: committed data survives a killed process
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class FeedbackStore:
    """Segments, queries and labels in SQLite (a path) or any SQLAlchemy URL (e.g. PostgreSQL)."""

    def __init__(self, url: str | Path = "runs/feedback.db"):
        text = str(url)
        if "://" not in text:
            path = Path(text)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = f"sqlite:///{path}"
        self.url = text
        self.engine: Engine = sa.create_engine(text)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._create_schema()

    def _create_schema(self, attempts: int = 5) -> None:
        """Create the tables that are missing. Two processes opening a new database at once (the app and a
        trainer) can both see a table missing and both create it, or both wait to write: the loser's error means
        the other is creating it, so it checks again."""
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except sa.exc.DBAPIError as error:
                if not ("already exists" in str(error) or "locked" in str(error)) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"FeedbackStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- segments ---------------------------------------------------------------------------

    def add_segments(
        self,
        segments: Sequence[Segment | StoredSegment],
        run: str = "default",
        video_paths: Sequence[str | None] | None = None,
        meta: Sequence[dict] | None = None,
        frames_paths: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Store segments (in one transaction) with, per segment, where its video (or folder of frames) is and
        any JSON metadata; a segment whose id is already stored is left as it is."""
        rows = []
        for i, segment in enumerate(segments):
            row = self._segment_row(segment, run, video_paths[i] if video_paths else None, meta[i] if meta else {})
            if frames_paths and frames_paths[i]:
                row["frames_path"] = frames_paths[i]
            rows.append(row)
        with self.engine.begin() as conn:
            existing = self._existing_ids(conn, [r["id"] for r in rows])
            fresh = [r for r in rows if r["id"] not in existing]
            if fresh:
                conn.execute(segments_table.insert(), fresh)
        return [r["id"] for r in rows]

    def add_segment(
        self,
        segment: Segment | StoredSegment,
        run: str = "default",
        video_path: str | None = None,
        meta: dict | None = None,
    ) -> str:
        return self.add_segments([segment], run, [video_path], [meta or {}])[0]

    def _segment_row(self, segment: Segment | StoredSegment, run: str, video_path: str | None, meta: dict) -> dict:
        if isinstance(segment, StoredSegment):
            env_spec, start, end = segment.env_spec, segment.start_step, segment.end_step
            video_path = video_path or segment.video_path
            meta = {**segment.meta, **meta}
            frames_path = segment.frames_path
        elif isinstance(segment, Segment):
            env_spec, start, end = segment.trajectory.env_spec, segment.start, segment.end
            frames_path = None
            meta = {"trajectory_id": segment.trajectory.id, "seed": segment.trajectory.seed, **meta}
        else:
            raise StoreError(f"expected a Segment or StoredSegment, got {type(segment).__name__}")
        try:
            json.dumps(meta)
        except TypeError as e:
            raise StoreError(f"segment meta must be JSON-serialisable: {e}") from None
        factors = segment.factors
        return {
            "id": segment.id,
            "run": run,
            "env_spec": env_spec,
            "start_step": int(start),
            "end_step": int(end),
            "obs": _pack(segment.obs),
            "actions": _pack(segment.actions),
            "env_rewards": _pack(segment.env_rewards),
            "agent_path": _pack(segment.agent_path),
            "factors": _pack(dict(factors)) if factors else None,
            "frames_path": frames_path,
            "video_path": video_path,
            "meta": meta,
            "created_at": time.time(),
        }

    @staticmethod
    def _existing_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        found = conn.execute(sa.select(segments_table.c.id).where(segments_table.c.id.in_(ids)))
        return {row[0] for row in found}

    def _require_segments(self, conn: Connection, ids: Sequence[str]) -> None:
        existing = self._existing_ids(conn, ids)
        missing = [i for i in ids if i not in existing]
        if missing:
            raise UnknownSegmentError(f"unknown segment id(s) {missing}: add the segments to the store first")

    def get_segment(self, segment_id: str) -> StoredSegment:
        return self.get_segments([segment_id])[0]

    def get_segments(self, ids: Sequence[str]) -> list[StoredSegment]:
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(segments_table).where(segments_table.c.id.in_(list(ids))))}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise UnknownSegmentError(f"unknown segment id(s) {missing}")
        out = []
        for i in ids:
            r = rows[i]
            out.append(
                StoredSegment(
                    id=r.id,
                    run=r.run,
                    env_spec=r.env_spec,
                    start_step=r.start_step,
                    end_step=r.end_step,
                    obs=_unpack(r.obs),
                    actions=_unpack(r.actions),
                    env_rewards=_unpack(r.env_rewards),
                    agent_path=_unpack(r.agent_path),
                    factors=_unpack(r.factors) or {},
                    frames_path=r.frames_path,
                    video_path=r.video_path,
                    meta=r.meta,
                    created_at=r.created_at,
                )
            )
        return out

    def segment_factors(self) -> dict[str, list[str]]:
        """For each env spec with stored segments that carry named factors, those factor names."""
        with self.engine.connect() as conn:
            firsts = (
                conn.execute(
                    sa.select(sa.func.min(segments_table.c.id))
                    .where(segments_table.c.factors.is_not(None))
                    .group_by(segments_table.c.env_spec)
                )
                .scalars()
                .all()
            )
        return {s.env_spec: list(s.factors) for s in self.get_segments(firsts)} if firsts else {}

    # -- queries ----------------------------------------------------------------------------

    def add_query(
        self,
        kind: str,
        segment_ids: Sequence[str],
        run: str = "default",
        assignee: str | None = None,
        meta: dict | None = None,
    ) -> str:
        """Ask for a label of ``kind`` on ``segment_ids``; ``assignee`` restricts who is served it."""
        if kind not in QUERY_KINDS:
            raise StoreError(f"query kind must be one of {QUERY_KINDS}, got {kind!r}")
        segment_ids = list(segment_ids)
        if kind == "preference" and len(segment_ids) != 2:
            raise StoreError(f"a preference query compares 2 segments, got {len(segment_ids)}")
        if kind == "ranking" and (len(segment_ids) < 2 or len(set(segment_ids)) != len(segment_ids)):
            raise StoreError(f"a ranking query needs 2 or more distinct segments, got {segment_ids}")
        query_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            self._require_segments(conn, segment_ids)
            conn.execute(
                queries_table.insert().values(
                    id=query_id,
                    run=run,
                    kind=kind,
                    segment_ids=segment_ids,
                    assignee=assignee,
                    status="pending",
                    leased_to=None,
                    lease_until=None,
                    meta=meta or {},
                    created_at=time.time(),
                    closed_at=None,
                )
            )
        return query_id

    def get_query(self, query_id: str) -> Query:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(queries_table).where(queries_table.c.id == query_id)).first()
        if row is None:
            raise QueryStateError(f"unknown query id {query_id!r}")
        return _query(row)

    def queries(self, run: str | None = None, status: str | None = None, kind: str | None = None) -> list[Query]:
        stmt = sa.select(queries_table).order_by(queries_table.c.created_at, queries_table.c.id)
        if run is not None:
            stmt = stmt.where(queries_table.c.run == run)
        if status is not None:
            stmt = stmt.where(queries_table.c.status == status)
        if kind is not None:
            stmt = stmt.where(queries_table.c.kind == kind)
        with self.engine.connect() as conn:
            return [_query(r) for r in conn.execute(stmt)]

    def lease_query(
        self,
        annotator: str,
        kinds: Sequence[str] | None = None,
        run: str | None = None,
        lease_seconds: float = 300.0,
        redundancy: int = 1,
    ) -> Query | None:
        """Hand the oldest pending query nobody holds to ``annotator`` for ``lease_seconds``, or None.

        Two annotators never hold the same query; a lease that runs out returns the query to the pool. With
        ``redundancy`` n > 1 a query is served to up to n different annotators (each labels it once) and stays
        pending until n labels are in.
        """
        check_source(annotator)
        if not isinstance(redundancy, int) or redundancy < 1:
            raise StoreError(f"redundancy must be an integer >= 1, got {redundancy!r}")
        for _ in range(20):
            now = time.time()
            free = sa.or_(
                queries_table.c.lease_until.is_(None),
                queries_table.c.lease_until < now,
                queries_table.c.leased_to == annotator,
            )
            labelled_by_me = (
                sa.select(labels_table.c.query_id)
                .where(labels_table.c.source == annotator)
                .where(labels_table.c.query_id.is_not(None))
            )
            stmt = (
                sa.select(queries_table.c.id)
                .where(queries_table.c.status == "pending")
                .where(sa.or_(queries_table.c.assignee.is_(None), queries_table.c.assignee == annotator))
                .where(queries_table.c.id.not_in(labelled_by_me))
                .order_by(queries_table.c.created_at, queries_table.c.id)
                .limit(1)
            )
            if redundancy == 1:
                stmt = stmt.where(free)
            if kinds is not None:
                stmt = stmt.where(queries_table.c.kind.in_(list(kinds)))
            if run is not None:
                stmt = stmt.where(queries_table.c.run == run)
            with self.engine.begin() as conn:
                candidate = conn.execute(stmt).scalar()
                if candidate is None:
                    return None
                update = queries_table.update().where(queries_table.c.id == candidate)
                update = update.where(queries_table.c.status == "pending")
                if redundancy == 1:
                    update = update.where(free)
                taken = conn.execute(update.values(leased_to=annotator, lease_until=now + lease_seconds)).rowcount
            if taken == 1:
                return self.get_query(candidate)
        return None

    def release_query(self, query_id: str, annotator: str) -> None:
        """Give a leased query back to the pool."""
        with self.engine.begin() as conn:
            conn.execute(
                queries_table.update()
                .where(queries_table.c.id == query_id)
                .where(queries_table.c.leased_to == annotator)
                .values(leased_to=None, lease_until=None)
            )

    def close_query(self, query_id: str) -> None:
        """Mark a pending query answered without a label of its own (e.g. a factor-ranking request, met by a
        ranking stored with :meth:`set_factor_ranking`)."""
        with self.engine.begin() as conn:
            conn.execute(
                queries_table.update()
                .where(queries_table.c.id == query_id)
                .where(queries_table.c.status == "pending")
                .values(status="answered", closed_at=time.time(), leased_to=None, lease_until=None)
            )

    def expire_queries(self, run: str | None = None, older_than: float | None = None) -> int:
        """Mark pending queries as expired (all of a run, or those created more than ``older_than`` s ago)."""
        stmt = queries_table.update().where(queries_table.c.status == "pending")
        if run is not None:
            stmt = stmt.where(queries_table.c.run == run)
        if older_than is not None:
            stmt = stmt.where(queries_table.c.created_at < time.time() - older_than)
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(status="expired", closed_at=time.time())).rowcount

    # -- labels -----------------------------------------------------------------------------

    def answer_query(
        self, query_id: str, source: str, note: str | None = None, redundancy: int = 1, **answer: Any
    ) -> int:
        """Answer a pending query with a label of its kind (``value=`` for preferences, ``order=`` or
        ``best=``/``worst=`` for rankings, ``state=``/``direction=``/``t=`` for corrections; other keywords of a
        preference or correction, such as HERON's deciding ``level=``, are kept in the label's payload); closes
        the query in the same transaction, or with ``redundancy`` n once n different sources have labelled it. A
        ``"skip"`` preference closes it as skipped. Returns the label id."""
        check_source(source)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(queries_table).where(queries_table.c.id == query_id)).first()
            if row is None:
                raise QueryStateError(f"unknown query id {query_id!r}")
            if row.status != "pending":
                raise QueryStateError(f"query {query_id} is already {row.status}; it takes no more labels")
            if row.assignee is not None and row.assignee != source:
                raise QueryStateError(f"query {query_id} is for {row.assignee}, not {source}")
            earlier = (
                conn.execute(sa.select(labels_table.c.source).where(labels_table.c.query_id == query_id))
                .scalars()
                .all()
            )
            if source in earlier:
                raise QueryStateError(f"{source} has already labelled query {query_id}")
            label = self._label_row(row.kind, list(row.segment_ids), source, note, row.run, answer)
            status = "skipped" if label["value"] == "skip" else "answered"
            values = {"leased_to": None, "lease_until": None}
            if len(earlier) + 1 >= redundancy or status == "skipped":
                values.update(status=status, closed_at=time.time())
            updated = conn.execute(
                queries_table.update()
                .where(queries_table.c.id == query_id)
                .where(queries_table.c.status == "pending")
                .values(**values)
            ).rowcount
            if updated != 1:
                raise QueryStateError(f"query {query_id} was answered by someone else meanwhile")
            return conn.execute(labels_table.insert().values(query_id=query_id, **label)).inserted_primary_key[0]

    def undo_last(self, source: str, run: str | None = None) -> Label | None:
        """Take back ``source``'s latest preference label (of ``run``, if given): the label is deleted and its
        query, if it had one, is pending again and leased back to ``source``. Returns the removed label, or None
        when there is nothing to take back."""
        check_source(source)
        mine = self.labels(run=run, source=source)
        if not mine:
            return None
        last = mine[-1]
        if last.kind != "preference":
            raise StoreError(
                f"only a preference can be taken back; {source}'s latest label is a {last.kind}, which its method "
                "has already used"
            )
        with self.engine.begin() as conn:
            conn.execute(labels_table.delete().where(labels_table.c.id == last.id))
            if last.query_id is not None:
                conn.execute(
                    queries_table.update()
                    .where(queries_table.c.id == last.query_id)
                    .values(status="pending", closed_at=None, leased_to=source, lease_until=time.time() + 300.0)
                )
        return last

    def add_preference(
        self, a: str, b: str, value: str, source: str, run: str = "default", note: str | None = None, **extra: Any
    ) -> int:
        """A preference between stored segments ``a`` and ``b`` given without a query (``extra`` fields go into its
        payload)."""
        return self._add_label("preference", [a, b], source, note, run, {"value": value, **extra})

    def add_ranking(
        self,
        segment_ids: Sequence[str],
        source: str,
        order: Sequence[str] | None = None,
        best: str | None = None,
        worst: str | None = None,
        run: str = "default",
        note: str | None = None,
    ) -> int:
        return self._add_label(
            "ranking", list(segment_ids), source, note, run, {"order": order, "best": best, "worst": worst}
        )

    def add_correction(
        self,
        state: Sequence[float],
        direction: Sequence[float],
        t: int,
        source: str,
        segment_id: str | None = None,
        run: str = "default",
        note: str | None = None,
        **extra: Any,
    ) -> int:
        """A directional correction: at time index ``t`` in ``state``, the agent should move along ``direction``."""
        answer = {"state": state, "direction": direction, "t": t, **extra}
        return self._add_label("correction", [segment_id] if segment_id else [], source, note, run, answer)

    def add_violation(
        self, state: Sequence[float], t: int, source: str, run: str = "default", note: str | None = None, **extra: Any
    ) -> int:
        """A safety violation seen at time index ``t``: the robot entered an unsafe region in ``state``."""
        return self._add_label("violation", [], source, note, run, {"state": state, "t": t, **extra})

    def set_factor_ranking(
        self,
        task: str,
        order: Sequence[str],
        source: str,
        signs: dict[str, int] | None = None,
        margins: dict[str, float] | None = None,
        run: str = "default",
        note: str | None = None,
    ) -> int:
        """Store ``source``'s ranking of ``task``'s reward factors, replacing an earlier one of theirs."""
        answer = {"task": task, "order": order, "signs": signs, "margins": margins}
        label = self._label_row("factor_ranking", [], check_source(source), note, run, answer)
        with self.engine.begin() as conn:
            for old in conn.execute(
                sa.select(labels_table.c.id, labels_table.c.payload)
                .where(labels_table.c.kind == "factor_ranking")
                .where(labels_table.c.source == source)
            ):
                if old.payload.get("task") == task:
                    conn.execute(labels_table.delete().where(labels_table.c.id == old.id))
            return conn.execute(labels_table.insert().values(query_id=None, **label)).inserted_primary_key[0]

    def factor_ranking(self, task: str, source: str | None = None) -> Label | None:
        """The latest factor ranking of ``task`` (by ``source`` if given)."""
        rankings = [lb for lb in self.labels(kind="factor_ranking", source=source) if lb.payload.get("task") == task]
        return rankings[-1] if rankings else None

    # -- runs -------------------------------------------------------------------------------

    def set_run_status(self, run: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (JSON values: steps, success rate, the latest eval video, ...) into ``run``'s status,
        which the annotation app shows; returns the whole status."""
        try:
            json.dumps(fields)
        except TypeError as e:
            raise StoreError(f"run status fields must be JSON-serialisable: {e}") from None
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(runs_table.c.status).where(runs_table.c.run == run)).first()
            status = {**(row.status if row else {}), **fields}
            if row is None:
                conn.execute(runs_table.insert().values(run=run, status=status, updated_at=time.time()))
            else:
                conn.execute(
                    runs_table.update().where(runs_table.c.run == run).values(status=status, updated_at=time.time())
                )
        return status

    def run_statuses(self) -> dict[str, dict[str, Any]]:
        """Every run's status, with ``updated_at``, most recently updated first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs_table).order_by(runs_table.c.updated_at.desc()))
            return {r.run: {**r.status, "updated_at": r.updated_at} for r in rows}

    def _add_label(
        self, kind: str, segment_ids: list[str], source: str, note: str | None, run: str, answer: dict
    ) -> int:
        check_source(source)
        label = self._label_row(kind, segment_ids, source, note, run, answer)
        with self.engine.begin() as conn:
            self._require_segments(conn, segment_ids)
            return conn.execute(labels_table.insert().values(query_id=None, **label)).inserted_primary_key[0]

    def _label_row(
        self, kind: str, segment_ids: list[str], source: str, note: str | None, run: str, answer: dict
    ) -> dict:
        if note is not None and not isinstance(note, str):
            raise StoreError(f"note must be text, got {type(note).__name__}")
        value, payload = None, {}
        if kind == "preference":
            value = answer.get("value")
            if value not in PREFERENCE_VALUES:
                raise StoreError(f"a preference value must be one of {PREFERENCE_VALUES}, got {value!r}")
            if len(segment_ids) != 2 or segment_ids[0] == segment_ids[1]:
                raise StoreError(f"a preference compares two different segments, got {segment_ids}")
            payload = _json_extras({k: v for k, v in answer.items() if k != "value"}, "preference")
        elif kind == "ranking":
            payload = _check_ranking(segment_ids, answer.get("order"), answer.get("best"), answer.get("worst"))
        elif kind in ("correction", "violation"):
            t = answer.get("t")
            if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 0:
                raise StoreError(f"a {kind}'s time index t must be an integer >= 0, got {t!r}")
            payload = {
                **_json_extras({k: v for k, v in answer.items() if k not in ("state", "direction", "t")}, kind),
                "state": _vector(answer.get("state"), "state"),
                "t": int(t),
            }
            if kind == "correction":
                payload["direction"] = _vector(answer.get("direction"), "direction", nonzero=True)
        elif kind == "factor_ranking":
            payload = _check_factor_ranking(answer)
        else:
            raise StoreError(f"label kind must be one of {LABEL_KINDS}, got {kind!r}")
        return {
            "run": run,
            "kind": kind,
            "segment_ids": segment_ids,
            "value": value,
            "payload": payload,
            "source": source,
            "note": note,
            "created_at": time.time(),
        }

    def labels(
        self,
        kind: str | None = None,
        run: str | None = None,
        source: str | None = None,
        after_id: int = 0,
    ) -> list[Label]:
        """Labels in the order they were given, filtered; ``after_id`` returns only newer ones."""
        stmt = sa.select(labels_table).where(labels_table.c.id > after_id).order_by(labels_table.c.id)
        if kind is not None:
            stmt = stmt.where(labels_table.c.kind == kind)
        if run is not None:
            stmt = stmt.where(labels_table.c.run == run)
        if source is not None:
            stmt = stmt.where(labels_table.c.source == source)
        with self.engine.connect() as conn:
            return [
                Label(
                    id=r.id,
                    run=r.run,
                    kind=r.kind,
                    segment_ids=list(r.segment_ids),
                    value=r.value,
                    payload=r.payload,
                    source=r.source,
                    note=r.note,
                    query_id=r.query_id,
                    created_at=r.created_at,
                )
                for r in conn.execute(stmt)
            ]

    def counts(self, run: str | None = None) -> dict[str, int]:
        """Numbers of segments, queries by status and labels by kind."""
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for name, table, column in (
                ("segments", segments_table, None),
                ("queries", queries_table, "status"),
                ("labels", labels_table, "kind"),
            ):
                if column is None:
                    stmt = sa.select(sa.func.count()).select_from(table)
                    if run is not None:
                        stmt = stmt.where(table.c.run == run)
                    out[name] = conn.execute(stmt).scalar()
                    continue
                stmt = sa.select(table.c[column], sa.func.count()).group_by(table.c[column])
                if run is not None:
                    stmt = stmt.where(table.c.run == run)
                for key, n in conn.execute(stmt):
                    out[f"{name}.{key}"] = n
        return out

    # -- export / import --------------------------------------------------------------------

    def export_jsonl(self, path: str | Path) -> Path:
        """Every row of every table, one JSON object per line (binary columns base64), in a stable order."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.engine.connect() as conn, open(path, "w") as f:
            for name, table in TABLES.items():
                for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns)):
                    record = {"table": name}
                    for column in table.columns:
                        value = row._mapping[column.name]
                        if isinstance(value, bytes):
                            value = {"base64": base64.b64encode(value).decode()}
                        record[column.name] = value
                    f.write(json.dumps(record, sort_keys=True) + "\n")
        return path

    def import_jsonl(self, path: str | Path) -> dict[str, int]:
        """Add the rows of an export (in one transaction); rows whose key is already here are refused."""
        rows: dict[str, list[dict]] = {name: [] for name in TABLES}
        with open(path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    table = TABLES[record.pop("table")]
                except (json.JSONDecodeError, KeyError) as e:
                    raise StoreError(f"{path}:{number} is not a feedback-store export line ({e})") from None
                row = {}
                for column in table.columns:
                    value = record.get(column.name)
                    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(column.type, sa.LargeBinary):
                        value = base64.b64decode(value["base64"])
                    row[column.name] = value
                rows[table.name].append(row)
        with self.engine.begin() as conn:
            for name in TABLES:
                if rows[name]:
                    try:
                        conn.execute(TABLES[name].insert(), rows[name])
                    except sa.exc.IntegrityError as e:
                        raise StoreError(f"importing {path}: {name} rows clash with rows already stored") from e
            if self.engine.dialect.name == "postgresql" and rows["labels"]:
                conn.execute(
                    sa.text("SELECT setval(pg_get_serial_sequence('labels', 'id'), (SELECT MAX(id) FROM labels))")
                )
        return {name: len(r) for name, r in rows.items()}


def _query(row) -> Query:
    return Query(
        id=row.id,
        run=row.run,
        kind=row.kind,
        segment_ids=list(row.segment_ids),
        status=row.status,
        assignee=row.assignee,
        leased_to=row.leased_to,
        lease_until=row.lease_until,
        meta=row.meta,
        created_at=row.created_at,
        closed_at=row.closed_at,
    )


def _json_extras(extras: dict[str, Any], kind: str) -> dict[str, Any]:
    """Extra fields a label carries in its payload (e.g. the level that decided a HERON preference), which must be
    JSON-serialisable."""
    try:
        json.dumps(extras)
    except TypeError as e:
        raise StoreError(f"{kind} extras must be JSON-serialisable: {e}") from None
    return extras


def _check_ranking(items: list[str], order, best, worst) -> dict:
    if len(items) < 2 or len(set(items)) != len(items):
        raise StoreError(f"a ranking needs 2 or more distinct segments, got {items}")
    if order is not None:
        order = list(order)
        if sorted(order) != sorted(items):
            raise StoreError(f"a ranking's order must list each of {items} once, got {order}")
        return {"order": order, "best": order[0], "worst": order[-1]}
    if best is None or worst is None:
        raise StoreError("a ranking needs a full order, or both best and worst")
    if best not in items or worst not in items or best == worst:
        raise StoreError(f"best and worst must be two different items of {items}, got {best!r} and {worst!r}")
    return {"order": None, "best": best, "worst": worst}


def _check_factor_ranking(answer: dict) -> dict:
    task, order = answer.get("task"), answer.get("order")
    if not isinstance(task, str) or not task:
        raise StoreError(f"a factor ranking names its task (an env spec), got {task!r}")
    if not order or not all(isinstance(x, str) and x for x in order) or len(set(order)) != len(order):
        raise StoreError(f"a factor ranking's order must list distinct factor names, got {order!r}")
    signs = answer.get("signs") or {}
    margins = answer.get("margins") or {}
    for name in list(signs) + list(margins):
        if name not in order:
            raise StoreError(f"signs and margins may only name ranked factors {list(order)}, got {name!r}")
    if any(s not in (1, -1) for s in signs.values()):
        raise StoreError(f"factor signs must be +1 or -1, got {signs}")
    if any(not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0 for m in margins.values()):
        raise StoreError(f"factor margins must be finite numbers >= 0, got {margins}")
    return {
        "task": task,
        "order": list(order),
        "signs": dict(signs),
        "margins": {k: float(v) for k, v in margins.items()},
    }
