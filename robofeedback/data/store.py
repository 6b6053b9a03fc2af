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

The store enforces its own rules: a query held by one annotator (its lease) cannot be answered by another, no
source labels a query twice (a unique index on the standing labels), the redundancy count is read inside the
write transaction that adds the label (SQLite's write lock is taken at BEGIN; PostgreSQL locks the query's row),
a label id is never reused, and a label taken back (undone, replaced, or a duplicate found by a migration) moves
to ``labels_taken_back`` with who took it back and when. Opening a SQLite file checks it (``PRAGMA
quick_check``) and its schema version, and migrates an older store in place after backing it up.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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
SOURCE_PATTERN = re.compile(r"(human|vlm|llm|script):[^\s:][^\s]*")

SCHEMA_VERSION = 2  # 1: the stores written before schema versions (no meta table)
MAX_NOTE_CHARS = 10_000
MAX_SOURCE_CHARS = 100
MAX_RUN_CHARS = 200
MAX_VECTOR_LENGTH = 1024  # entries of a correction's or violation's state or direction
MAX_LEASES_PER_ANNOTATOR = 4  # queries one annotator may hold at once
LEASE_SECONDS = 300.0
MIGRATION_REASON = "a second standing label of this source on this query, found when migrating to schema 2"

log = logging.getLogger(__name__)


class StoreError(ValueError):
    """Input the feedback store refuses; nothing was written."""


class UnknownSegmentError(StoreError, KeyError):
    """A label or query names a segment the store does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class QueryStateError(StoreError):
    """A query that cannot take this answer: unknown, already answered, skipped or expired, or held by another."""


class DamagedStoreError(StoreError):
    """A store file that is damaged, not a database, or of a newer schema: it is not opened."""


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
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("closed_at", sa.Double, nullable=True),
)

leases_table = sa.Table(
    "leases",
    metadata,
    sa.Column("query_id", sa.String(64), sa.ForeignKey("queries.id"), primary_key=True),
    sa.Column("holder", sa.String(200), primary_key=True, index=True),
    sa.Column("until", sa.Double, nullable=False),
)


def _label_columns() -> list[sa.Column]:
    return [
        sa.Column("run", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("query_id", sa.String(64), sa.ForeignKey("queries.id"), nullable=True),
        sa.Column("segment_ids", sa.JSON, nullable=False),
        sa.Column("value", sa.String(20), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("source", sa.String(200), nullable=False, index=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
    ]


ONE_LABEL_PER_SOURCE = sa.UniqueConstraint("query_id", "source", name="uq_labels_query_source")
labels_table = sa.Table(  # the labels that stand; AUTOINCREMENT: SQLite never hands out a taken-back id again
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_label_columns(),
    ONE_LABEL_PER_SOURCE,
    sqlite_autoincrement=True,
)

taken_back_table = sa.Table(  # labels taken back, with their ids, kept for the audit trail
    "labels_taken_back",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    *_label_columns(),
    sa.Column("taken_back_at", sa.Double, nullable=False),
    sa.Column("taken_back_by", sa.String(200), nullable=True),  # None: the store itself (a migration)
    sa.Column("reason", sa.String(200), nullable=False),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run", sa.String(200), primary_key=True),
    sa.Column("status", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

meta_table = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

TABLES = {  # what an export holds, in the order an import inserts it (leases are short-lived and not exported)
    "segments": segments_table,
    "queries": queries_table,
    "labels": labels_table,
    "labels_taken_back": taken_back_table,
    "runs": runs_table,
}
V1_TABLES = {"segments", "queries", "labels", "runs"}


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
    meta: dict[str, Any]
    created_at: float
    closed_at: float | None
    leases: dict[str, float] = field(default_factory=dict)  # who holds it now, and until when


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


@dataclass
class MigrationReport:
    """What opening an older store changed: the schema versions, where the backup taken first is, and the labels
    the migration took back (each a second standing label of one source on one query, kept in the audit table)."""

    store: str
    from_version: int
    to_version: int
    backup: Path | None
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # query_id, source, kept id, taken_back ids

    def __str__(self) -> str:
        backup = f"backup at {self.backup}" if self.backup else "no file backup (not a SQLite file)"
        lines = [f"migrated {self.store} from schema {self.from_version} to {self.to_version} ({backup})"]
        lines += [
            f"  query {d['query_id']}: {d['source']} had {1 + len(d['taken_back'])} labels; kept {d['kept']}, "
            f"took back {d['taken_back']} (see labels_taken_back)"
            for d in self.duplicates
        ]
        return "\n".join(lines)


def _control_characters(text: str) -> bool:
    """Whether ``text`` holds control or format characters (newlines, NUL, zero-width spaces and joiners)."""
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def check_source(source: str) -> str:
    """``source`` if it is a label source (``human:<name>`` and the like, at most MAX_SOURCE_CHARS characters,
    without spaces or control characters); StoreError otherwise."""
    if isinstance(source, str) and len(source) > MAX_SOURCE_CHARS:
        raise StoreError(f"a source has at most {MAX_SOURCE_CHARS} characters, got {len(source)}")
    if not isinstance(source, str) or not SOURCE_PATTERN.fullmatch(source) or _control_characters(source):
        raise StoreError(
            "source must look like human:<name>, vlm:<model>, llm:<model> or script:<teacher> (no spaces or control "
            f"characters), got {source!r}"
        )
    return source


def check_run(run: str) -> str:
    """``run`` if it is a run name (1 to MAX_RUN_CHARS characters, no control characters); StoreError otherwise."""
    if not isinstance(run, str) or not run or len(run) > MAX_RUN_CHARS or _control_characters(run):
        shown = f"{len(run)} characters" if isinstance(run, str) and len(run) > 80 else repr(run)
        raise StoreError(f"a run name is 1 to {MAX_RUN_CHARS} characters without control characters, got {shown}")
    return run


def _check_note(note: str | None) -> None:
    if note is not None and not isinstance(note, str):
        raise StoreError(f"note must be text, got {type(note).__name__}")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise StoreError(f"a note has at most {MAX_NOTE_CHARS} characters, got {len(note)}")


def _vector(value: Any, name: str, nonzero: bool = False) -> list[float]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise StoreError(f"{name} must be a 1-D list of numbers, got {value!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise StoreError(f"{name} must be a non-empty 1-D list of numbers, got shape {array.shape}")
    if array.size > MAX_VECTOR_LENGTH:
        raise StoreError(f"{name} has at most {MAX_VECTOR_LENGTH} numbers, got {array.size}")
    if not np.isfinite(array).all():
        raise StoreError(f"{name} must hold finite numbers, got {array.tolist()}")
    if nonzero and not np.linalg.norm(array) > 0:
        raise StoreError(f"{name} must not be the zero vector")
    return array.tolist()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # pysqlite defers BEGIN to the first write; _sqlite_begin begins
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


def _sqlite_begin(conn: Connection) -> None:
    """A write transaction takes the write lock at BEGIN, so that what it reads before it writes (earlier labels,
    leases) cannot change before it commits; a read transaction takes none."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


class FeedbackStore:
    """Segments, queries and labels in SQLite (a path) or any SQLAlchemy URL (e.g. PostgreSQL).

    Opening checks the database (a SQLite file's header and ``PRAGMA quick_check``, and the schema version) and
    raises :class:`DamagedStoreError` for a damaged or foreign file; a store of an older schema is backed up next to
    its file and migrated, and :attr:`migration` says what changed (None when nothing did).

    >>> import tempfile
    >>> from robofeedback.data.trajectory import Trajectory
    >>> folder = tempfile.TemporaryDirectory()
    >>> store = FeedbackStore(f"{folder.name}/feedback.db")
    >>> traj = Trajectory(np.zeros((5, 2)), np.zeros((4, 1)), np.array([0, 0, 1, 1.0]), [{}] * 4, np.zeros((5, 3)))
    >>> a, b = store.add_segments([traj.segment(0, 2), traj.segment(2, 4)], run="demo")
    >>> query = store.add_query("preference", [a, b], run="demo")
    >>> store.answer_query(query, "human:alice", value="b")
    1
    >>> label = store.labels(kind="preference")[0]
    >>> label.value, label.source, label.segment_ids == [a, b], store.get_query(query).status
    ('b', 'human:alice', True, 'answered')
    >>> store.counts()
    {'segments': 2, 'queries.answered': 1, 'labels.preference': 1}
    >>> store.close()
    >>> folder.cleanup()
    """

    def __init__(self, url: str | Path = "runs/feedback.db"):
        text = str(url)
        if "://" not in text:
            path = Path(text)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = f"sqlite:///{path}"
        self.url = text
        self.engine: Engine = sa.create_engine(text)
        database = self.engine.url.database
        sqlite_file = self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        self.path: Path | None = Path(database) if sqlite_file else None
        self.migration: MigrationReport | None = None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        try:
            self._check_file()
            self._open_schema()
        except (sa.exc.DBAPIError, sqlite3.DatabaseError) as error:
            self.engine.dispose()
            if self.path is None:
                raise
            raise self._damaged(getattr(error, "orig", error)) from None
        except StoreError:
            self.engine.dispose()
            raise
        if self.migration is not None:
            log.warning("%s", self.migration)

    def _damaged(self, problem: Any) -> DamagedStoreError:
        return DamagedStoreError(
            f"the feedback store {self.path} is damaged or not a feedback store ({problem}); it was not opened. "
            "Restore it from a backup (robofeedback store backup makes one) or from a JSONL export into a new file "
            "(robofeedback store import --store NEW.db EXPORT.jsonl), or point at another file."
        )

    def _check_file(self) -> None:
        """A SQLite file must begin with SQLite's header and pass ``PRAGMA quick_check`` (page and b-tree
        structure, in time linear in the file's size)."""
        if self.path is None or not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise self._damaged("the file does not begin with SQLite's header")
        self._sqlite_check("quick_check")

    def _sqlite_check(self, pragma: str) -> None:
        """Run SQLite's ``quick_check`` or ``integrity_check``; DamagedStoreError with its first findings."""
        with self.engine.connect() as conn:
            found = conn.exec_driver_sql(f"PRAGMA {pragma}").scalars().all()
        problems = [line for text in found for line in text.splitlines() if not line.startswith("*** in database")]
        if problems != ["ok"]:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise self._damaged(f"{pragma}: " + "; ".join(problems[:3]) + more)

    def _open_schema(self, attempts: int = 5) -> None:
        """Create a new store's tables, or check an existing store's schema version and migrate an older one. Two
        processes opening a new PostgreSQL database at once can both create a table: the loser's error means the
        other is creating it, so it checks again (on SQLite the write lock taken at BEGIN orders them)."""
        for attempt in range(attempts):
            try:
                with self.write() as conn:
                    self.migration = self._prepare_schema(conn)
                return
            except sa.exc.DBAPIError as error:
                if not ("already exists" in str(error) or "locked" in str(error)) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _prepare_schema(self, conn: Connection) -> MigrationReport | None:
        tables = set(sa.inspect(conn).get_table_names())
        if meta_table.name in tables:
            version = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
            if version is None or not version.isdigit() or int(version) > SCHEMA_VERSION:
                raise DamagedStoreError(
                    f"{self!r} has feedback-store schema version {version!r}; this robofeedback reads version "
                    f"{SCHEMA_VERSION} and older: open it with the robofeedback that wrote it, or upgrade"
                )
            return None
        if not tables:
            metadata.create_all(conn)
            conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return None
        if not V1_TABLES <= tables:
            raise DamagedStoreError(
                f"{self!r} holds tables {sorted(tables)} but no feedback store: point at another file or database"
            )
        return self._migrate_from_v1(conn)

    def _migrate_from_v1(self, conn: Connection) -> MigrationReport:
        """Bring a store written before schema versions to schema 2, in the open transaction: leases move to their
        table, a second standing label of one source on one query is taken back (reported), and on SQLite the
        labels table is rebuilt so that its ids are never reused (AUTOINCREMENT) and (query, source) is unique."""
        backup = None
        if self.path is not None:
            backup = self._free_name(self.path.with_name(f"{self.path.name}.schema-1-backup"))
            self.backup(backup)
        report = MigrationReport(repr(self), 1, SCHEMA_VERSION, backup)
        metadata.create_all(conn, tables=[leases_table, taken_back_table, meta_table])
        now = time.time()
        held = conn.execute(
            sa.text(
                "SELECT id, leased_to, lease_until FROM queries WHERE status = 'pending' AND leased_to IS NOT NULL "
                "AND lease_until >= :now"
            ),
            {"now": now},
        ).all()
        if held:
            conn.execute(leases_table.insert(), [{"query_id": q, "holder": h, "until": u} for q, h, u in held])
        conn.execute(sa.text("ALTER TABLE queries DROP COLUMN leased_to"))
        conn.execute(sa.text("ALTER TABLE queries DROP COLUMN lease_until"))
        doubled = conn.execute(
            sa.select(labels_table.c.query_id, labels_table.c.source)
            .where(labels_table.c.query_id.is_not(None))
            .group_by(labels_table.c.query_id, labels_table.c.source)
            .having(sa.func.count() > 1)
        ).all()
        for query_id, source in doubled:
            rows = conn.execute(
                sa.select(labels_table)
                .where(labels_table.c.query_id == query_id, labels_table.c.source == source)
                .order_by(labels_table.c.id)
            ).all()
            for row in rows[1:]:
                _take_back(conn, row, None, MIGRATION_REASON, now)
            report.duplicates.append(
                {"query_id": query_id, "source": source, "kept": rows[0].id, "taken_back": [r.id for r in rows[1:]]}
            )
        if self.engine.dialect.name == "sqlite":
            for index in labels_table.indexes:
                conn.execute(sa.text(f"DROP INDEX IF EXISTS {index.name}"))
            conn.execute(sa.text("ALTER TABLE labels RENAME TO labels_schema_1"))
            labels_table.create(conn)
            columns = ", ".join(c.name for c in labels_table.columns)
            conn.execute(sa.text(f"INSERT INTO labels ({columns}) SELECT {columns} FROM labels_schema_1"))
            conn.execute(sa.text("DROP TABLE labels_schema_1"))
        else:
            conn.execute(sa.schema.AddConstraint(ONE_LABEL_PER_SOURCE))
        conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        return report

    @staticmethod
    def _free_name(path: Path) -> Path:
        candidate, n = path, 1
        while candidate.exists():
            n += 1
            candidate = path.with_name(f"{path.name}.{n}")
        return candidate

    def backup(self, path: str | Path) -> Path:
        """Copy this SQLite store to ``path`` (a new file) with SQLite's online backup API: a consistent copy even
        while trainers and the app write to the store."""
        if self.path is None:
            raise StoreError(f"{self!r} is not a SQLite file: back a database server up with its own tools (pg_dump)")
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} exists already: back up to a new file")
        path.parent.mkdir(parents=True, exist_ok=True)
        source, target = sqlite3.connect(self.path), sqlite3.connect(path)
        try:
            source.execute("PRAGMA busy_timeout=30000")
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, without -wal and -shm
        finally:
            target.close()
            source.close()
        return path

    def check(self) -> dict[str, Any]:
        """The full integrity check of a SQLite store (``PRAGMA integrity_check``: also indexes against their
        tables), the schema version, and :meth:`counts`; raises :class:`DamagedStoreError` when it finds a
        problem."""
        if self.path is not None:
            self._sqlite_check("integrity_check")
        with self.engine.connect() as conn:
            version = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
            taken_back = conn.execute(sa.select(sa.func.count()).select_from(taken_back_table)).scalar()
        return {"schema_version": int(version), **self.counts(), "labels_taken_back": taken_back}

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it holds the database's write lock from its first statement (so that what
        it reads before it writes cannot change under it, and it never fails to upgrade a read to a write)."""
        with self.engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                yield conn

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
        check_run(run)
        rows = []
        for i, segment in enumerate(segments):
            row = self._segment_row(segment, run, video_paths[i] if video_paths else None, meta[i] if meta else {})
            if frames_paths and frames_paths[i]:
                row["frames_path"] = frames_paths[i]
            rows.append(row)
        with self.write() as conn:
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
        segment_ids = _check_query_shape(kind, segment_ids)
        check_run(run)
        if assignee is not None:
            check_source(assignee)
        meta = _json_extras(meta or {}, "query meta")
        query_id = uuid.uuid4().hex
        with self.write() as conn:
            self._require_segments(conn, segment_ids)
            conn.execute(
                queries_table.insert().values(
                    id=query_id,
                    run=run,
                    kind=kind,
                    segment_ids=segment_ids,
                    assignee=assignee,
                    status="pending",
                    meta=meta,
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
            return _query(row, _live_leases(conn, time.time(), query_id).get(query_id, {}))

    def queries(self, run: str | None = None, status: str | None = None, kind: str | None = None) -> list[Query]:
        stmt = sa.select(queries_table).order_by(queries_table.c.created_at, queries_table.c.id)
        if run is not None:
            stmt = stmt.where(queries_table.c.run == run)
        if status is not None:
            stmt = stmt.where(queries_table.c.status == status)
        if kind is not None:
            stmt = stmt.where(queries_table.c.kind == kind)
        with self.engine.connect() as conn:
            leases = _live_leases(conn, time.time())
            return [_query(r, leases.get(r.id, {})) for r in conn.execute(stmt)]

    def lease_query(
        self,
        annotator: str,
        kinds: Sequence[str] | None = None,
        run: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        redundancy: int = 1,
        max_held: int = MAX_LEASES_PER_ANNOTATOR,
    ) -> Query | None:
        """Hand ``annotator`` a pending query for ``lease_seconds``: the one they hold already (renewed), else the
        oldest one with room, or None.

        A query has room while its live leases and its labels number fewer than ``redundancy``: with 1, two
        annotators never hold the same query; with n > 1 up to n different annotators hold it (each labels it
        once) and it stays pending until n labels are in. A lease that runs out returns the query to the pool. An
        annotator holding ``max_held`` queries (of any kind and run) is handed no more until they answer or release
        one, so that no one holds everything.
        """
        check_source(annotator)
        _check_redundancy(redundancy)
        if not isinstance(max_held, int) or max_held < 1:
            raise StoreError(f"max_held must be an integer >= 1, got {max_held!r}")
        with self.write() as conn:
            if self.engine.dialect.name == "postgresql":  # one lease_query per annotator at a time: max_held holds
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(annotator))))
            now = time.time()
            mine = sa.select(leases_table.c.query_id).where(
                leases_table.c.holder == annotator, leases_table.c.until >= now
            )
            stmt = (
                sa.select(queries_table.c.id)
                .where(queries_table.c.status == "pending")
                .where(sa.or_(queries_table.c.assignee.is_(None), queries_table.c.assignee == annotator))
                .order_by(queries_table.c.created_at, queries_table.c.id)
            )
            if kinds is not None:
                stmt = stmt.where(queries_table.c.kind.in_(list(kinds)))
            if run is not None:
                stmt = stmt.where(queries_table.c.run == run)
            held = conn.execute(stmt.where(queries_table.c.id.in_(mine)).limit(1)).scalar()
            if held is not None:
                self._lease(conn, held, annotator, now + lease_seconds)
                return _query(self._locked_query(conn, held), _live_leases(conn, now, held).get(held, {}))
            holding = conn.execute(
                sa.select(sa.func.count())
                .select_from(leases_table.join(queries_table))
                .where(leases_table.c.holder == annotator, leases_table.c.until >= now)
                .where(queries_table.c.status == "pending")
            ).scalar()
            if holding >= max_held:
                return None
            labelled_by_me = (
                sa.select(labels_table.c.query_id)
                .where(labels_table.c.source == annotator)
                .where(labels_table.c.query_id.is_not(None))
            )
            stmt = stmt.where(queries_table.c.id.not_in(labelled_by_me))
            stmt = stmt.where(_taken(queries_table.c.id, now) < redundancy)
            for candidate in conn.execute(stmt.limit(50)).scalars().all():
                row = self._locked_query(conn, candidate)  # PostgreSQL: count again under the row's lock
                if row.status == "pending" and conn.execute(sa.select(_taken(candidate, now))).scalar() < redundancy:
                    self._lease(conn, candidate, annotator, now + lease_seconds)
                    return _query(row, _live_leases(conn, now, candidate).get(candidate, {}))
        return None

    @staticmethod
    def _locked_query(conn: Connection, query_id: str):
        """The query's row, locked until the transaction ends on PostgreSQL (SQLite's write lock covers it)."""
        return conn.execute(sa.select(queries_table).where(queries_table.c.id == query_id).with_for_update()).first()

    @staticmethod
    def _lease(conn: Connection, query_id: str, holder: str, until: float) -> None:
        conn.execute(leases_table.delete().where(leases_table.c.query_id == query_id, leases_table.c.holder == holder))
        conn.execute(leases_table.insert().values(query_id=query_id, holder=holder, until=until))

    def release_query(self, query_id: str, annotator: str) -> None:
        """Give a leased query back to the pool."""
        with self.write() as conn:
            conn.execute(
                leases_table.delete().where(leases_table.c.query_id == query_id, leases_table.c.holder == annotator)
            )

    def close_query(self, query_id: str) -> None:
        """Mark a pending query answered without a label of its own (e.g. a factor-ranking request, met by a
        ranking stored with :meth:`set_factor_ranking`)."""
        with self.write() as conn:
            conn.execute(
                queries_table.update()
                .where(queries_table.c.id == query_id)
                .where(queries_table.c.status == "pending")
                .values(status="answered", closed_at=time.time())
            )
            conn.execute(leases_table.delete().where(leases_table.c.query_id == query_id))

    def expire_queries(self, run: str | None = None, older_than: float | None = None) -> int:
        """Mark pending queries as expired (all of a run, or those created more than ``older_than`` s ago)."""
        stmt = queries_table.update().where(queries_table.c.status == "pending")
        if run is not None:
            stmt = stmt.where(queries_table.c.run == run)
        if older_than is not None:
            stmt = stmt.where(queries_table.c.created_at < time.time() - older_than)
        with self.write() as conn:
            expired = conn.execute(stmt.values(status="expired", closed_at=time.time())).rowcount
            closed = sa.select(queries_table.c.id).where(queries_table.c.status != "pending")
            conn.execute(leases_table.delete().where(leases_table.c.query_id.in_(closed)))
            return expired

    # -- labels -----------------------------------------------------------------------------

    def answer_query(
        self,
        query_id: str,
        source: str,
        note: str | None = None,
        redundancy: int = 1,
        authenticated: bool = True,
        **answer: Any,
    ) -> int:
        """Answer a pending query with a label of its kind (``value=`` for preferences, ``order=`` or
        ``best=``/``worst=`` for rankings, ``state=``/``direction=``/``t=`` for corrections; other keywords of a
        preference or correction, such as HERON's deciding ``level=``, are kept in the label's payload); closes
        the query in the same transaction, or with ``redundancy`` n once n different sources have labelled it. A
        ``"skip"`` preference closes it as skipped. Returns the label id. A label whose source nobody checked (a name
        typed into an app that runs open) is given with ``authenticated=False``, kept in its payload.

        ``source`` must hold the query's lease, be its assignee, or find room on it (fewer live leases of others and
        labels than ``redundancy``: a scripted teacher answers a query nobody holds without leasing it); a query
        another annotator holds is refused. Everything is read and written under the write lock (SQLite) or the
        query row's lock (PostgreSQL)."""
        check_source(source)
        _check_redundancy(redundancy)
        with self.write() as conn:
            row = self._locked_query(conn, query_id)
            if row is None:
                raise QueryStateError(f"unknown query id {query_id!r}")
            if row.status != "pending":
                raise QueryStateError(f"query {query_id} is already {row.status}; it takes no more labels")
            if row.assignee is not None and row.assignee != source:
                raise QueryStateError(f"query {query_id} is for {row.assignee}, not {source}")
            now = time.time()
            earlier = (
                conn.execute(sa.select(labels_table.c.source).where(labels_table.c.query_id == query_id))
                .scalars()
                .all()
            )
            if source in earlier:
                raise QueryStateError(f"{source} has already labelled query {query_id}")
            holders = _live_leases(conn, now, query_id).get(query_id, {})
            if source not in holders and row.assignee != source and len(holders) + len(earlier) >= redundancy:
                raise QueryStateError(
                    f"query {query_id} is held by {', '.join(sorted(holders))}; lease a query first (lease_query)"
                )
            query = dict(row._mapping)
            label = self._label_row(row.kind, list(row.segment_ids), source, note, row.run, answer, query=query)
            if not authenticated:
                label["payload"] = {**label["payload"], "authenticated": False}
            status = "skipped" if label["value"] == "skip" else "answered"
            released = leases_table.delete().where(leases_table.c.query_id == query_id)
            if len(earlier) + 1 >= redundancy or status == "skipped":
                conn.execute(
                    queries_table.update()
                    .where(queries_table.c.id == query_id)
                    .values(status=status, closed_at=time.time())
                )
            else:
                released = released.where(leases_table.c.holder == source)
            conn.execute(released)
            return conn.execute(labels_table.insert().values(query_id=query_id, **label)).inserted_primary_key[0]

    def undo_last(self, source: str, run: str | None = None) -> Label | None:
        """Take back ``source``'s latest preference label (of ``run``, if given): the label moves to the audit
        table ``labels_taken_back`` (who, when; its id is never used again) and its query, if it had one, is pending
        again and leased back to ``source``. Returns the label taken back, or None when there is nothing to take
        back."""
        check_source(source)
        stmt = sa.select(labels_table).where(labels_table.c.source == source)
        if run is not None:
            stmt = stmt.where(labels_table.c.run == run)
        with self.write() as conn:
            row = conn.execute(stmt.order_by(labels_table.c.id.desc()).limit(1)).first()
            if row is None:
                return None
            if row.kind != "preference":
                raise StoreError(
                    f"only a preference can be taken back; {source}'s latest label is a {row.kind}, which its method "
                    "has already used"
                )
            now = time.time()
            _take_back(conn, row, source, "undo", now)
            if row.query_id is not None:
                conn.execute(
                    queries_table.update()
                    .where(queries_table.c.id == row.query_id)
                    .values(status="pending", closed_at=None)
                )
                self._lease(conn, row.query_id, source, now + LEASE_SECONDS)
        return _label(row)

    def taken_back(self, source: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of labels taken back, oldest first: each label's fields with ``taken_back_at``,
        ``taken_back_by`` (None: the store itself, in a migration) and ``reason``."""
        stmt = sa.select(taken_back_table).order_by(taken_back_table.c.taken_back_at, taken_back_table.c.id)
        if source is not None:
            stmt = stmt.where(taken_back_table.c.source == source)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

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
        with self.write() as conn:
            now = time.time()
            for old in conn.execute(
                sa.select(labels_table)
                .where(labels_table.c.kind == "factor_ranking")
                .where(labels_table.c.source == source)
            ).all():
                if old.payload.get("task") == task:
                    _take_back(conn, old, source, "replaced by a newer factor ranking", now)
            return conn.execute(labels_table.insert().values(query_id=None, **label)).inserted_primary_key[0]

    def factor_ranking(self, task: str, source: str | None = None) -> Label | None:
        """The latest factor ranking of ``task`` (by ``source`` if given)."""
        rankings = [lb for lb in self.labels(kind="factor_ranking", source=source) if lb.payload.get("task") == task]
        return rankings[-1] if rankings else None

    # -- runs -------------------------------------------------------------------------------

    def set_run_status(self, run: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (JSON values: steps, success rate, the latest eval video, ...) into ``run``'s status,
        which the annotation app shows; returns the whole status."""
        check_run(run)
        try:
            json.dumps(fields)
        except TypeError as e:
            raise StoreError(f"run status fields must be JSON-serialisable: {e}") from None
        with self.write() as conn:
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
        with self.write() as conn:
            self._require_segments(conn, segment_ids)
            return conn.execute(labels_table.insert().values(query_id=None, **label)).inserted_primary_key[0]

    def _label_row(
        self,
        kind: str,
        segment_ids: list[str],
        source: str,
        note: str | None,
        run: str,
        answer: dict,
        query: dict | None = None,
    ) -> dict:
        """A label's row, checked as every label is (import included); ``query``: the row of the query it answers."""
        _check_note(note)
        check_run(run)
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
                if query is not None:
                    _check_direction_size(query, payload)
                elif len(payload["direction"]) > len(payload["state"]):  # it moves the controls, never more
                    raise StoreError(
                        f"a correction's direction has at most its state's {len(payload['state'])} numbers, got "
                        f"{len(payload['direction'])}"
                    )
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
            return [_label(r) for r in conn.execute(stmt)]

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
        with open(path, "w") as f:
            for name in TABLES:
                for row in self.table_rows(name):
                    record = {"table": name}
                    for key, value in row.items():
                        binary = isinstance(value, bytes)
                        record[key] = {"base64": base64.b64encode(value).decode()} if binary else value
                    f.write(json.dumps(record, sort_keys=True) + "\n")
        return path

    def table_rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of the exported table ``name`` (one of :data:`TABLES`) as stored, binary columns as bytes, in
        primary-key order."""
        table = TABLES[name]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]

    def import_jsonl(self, path: str | Path) -> dict[str, int]:
        """Add the rows of an export, in one transaction, checked as :meth:`import_records` checks them."""

        def records() -> Iterator[tuple[str, str, dict]]:
            with open(path) as f:
                for number, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        name = record.pop("table")
                    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                        raise StoreError(f"{path}:{number} is not a feedback-store export line ({e})") from None
                    yield f"{path}:{number}", name, record

        return self.import_records(records(), str(path))

    def import_records(
        self, records: Iterable[tuple[str, str, dict]], what: str, renumber_labels: bool = False
    ) -> dict[str, int]:
        """Add rows, in one transaction: each record is (where it came from, a table of :data:`TABLES`, the row as
        an export holds it: binary columns as ``{"base64": ...}`` or bytes). Every row is checked as the API checks
        what it writes (label values and payloads, kinds, sources, runs, notes, statuses, that named segments and
        queries exist); one bad row, or a row whose key is here already, and nothing is written: StoreError names
        where and the field. With ``renumber_labels`` the labels (standing and taken back) get new ids above every
        id held, in the order given, instead of keeping theirs."""
        rows: dict[str, list[dict]] = {name: [] for name in TABLES}
        known: dict[str, dict[str, Any]] = {"segments": {}, "queries": {}, "labels": {}}
        for where, name, record in records:
            if name not in TABLES:
                raise StoreError(f"{where}: no table {name!r} in a feedback store (tables: {list(TABLES)})")
            try:
                row = self._import_row(name, TABLES[name], record, known)
            except _FieldError as e:
                raise StoreError(f"{where}: {name} row, field {e.field}: {e.message}") from None
            rows[name].append(row)
        labelled = rows["labels"] + rows["labels_taken_back"]
        with self.write() as conn:
            if renumber_labels and labelled:
                first = self._highest_label_id(conn) + 1
                for new_id, row in enumerate(sorted(labelled, key=lambda r: r["id"]), start=first):
                    row["id"] = new_id
            for name in TABLES:
                if rows[name]:
                    try:
                        conn.execute(TABLES[name].insert(), rows[name])
                    except sa.exc.IntegrityError as e:
                        raise StoreError(f"importing {what}: {name} rows clash with rows already stored") from e
            if labelled:
                self._skip_label_ids(conn, max(r["id"] for r in labelled))
        return {name: len(r) for name, r in rows.items()}

    def _highest_label_id(self, conn: Connection) -> int:
        """The highest label id ever handed out: held by a label, a taken-back one, or SQLite's sequence."""
        held = [
            conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0 for table in (labels_table, taken_back_table)
        ]
        if self.engine.dialect.name == "sqlite":
            held.append(conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'labels'")).scalar() or 0)
        return max(held)

    def _skip_label_ids(self, conn: Connection, used: int) -> None:
        """New labels get ids above ``used`` (and above every label id held), so no imported id is reused."""
        if self.engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('labels', 'id'), GREATEST(:used, (SELECT COALESCE(MAX(id), "
                    "0) FROM labels), (SELECT COALESCE(MAX(id), 0) FROM labels_taken_back)))"
                ),
                {"used": used},
            )
        elif self.engine.dialect.name == "sqlite":
            seq = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'labels'")).scalar()
            if seq is None:
                conn.execute(
                    sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('labels', :used)"), {"used": used}
                )
            elif seq < used:
                conn.execute(sa.text("UPDATE sqlite_sequence SET seq = :used WHERE name = 'labels'"), {"used": used})

    def _import_row(self, name: str, table: sa.Table, record: dict, known: dict[str, dict[str, Any]]) -> dict:
        """One export line as a row of ``table``, checked field by field; raises _FieldError. ``known``: the
        segments, queries and label ids of earlier lines."""
        unknown = sorted(set(record) - {c.name for c in table.columns})
        if unknown:
            raise _FieldError(unknown[0], f"{name} rows have no such field")
        row: dict[str, Any] = {}
        for column in table.columns:
            value = record.get(column.name)
            if value is None and not column.nullable:
                raise _FieldError(column.name, "missing")
            if isinstance(column.type, sa.LargeBinary) and value is not None:
                encoded = isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str)
                if not (encoded or isinstance(value, bytes)):
                    raise _FieldError(column.name, 'expected {"base64": "..."}')
                try:
                    value = base64.b64decode(value["base64"], validate=True) if encoded else value
                    _unpack(value)
                except (ValueError, OSError, EOFError) as e:
                    raise _FieldError(column.name, f"not the arrays an export holds ({e})") from None
            elif isinstance(column.type, sa.Double) and value is not None:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    raise _FieldError(column.name, f"expected a finite number, got {value!r}")
            elif isinstance(column.type, sa.Integer) and value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise _FieldError(column.name, f"expected an integer >= 0, got {value!r}")
            elif isinstance(column.type, sa.String) and value is not None:
                if not isinstance(value, str) or (column.type.length and len(value) > column.type.length):
                    raise _FieldError(column.name, f"expected text of at most {column.type.length} characters")
            row[column.name] = value
        if "run" in row:
            with _field("run"):
                check_run(row["run"])
        if name in ("segments", "queries") and row["id"] in known[name]:
            raise _FieldError("id", f"{row['id']!r} appears twice in this file")
        if name == "segments":
            known["segments"][row["id"]] = row
            if not isinstance(row["meta"], dict):
                raise _FieldError("meta", "expected a JSON object")
            if row["end_step"] < row["start_step"]:
                raise _FieldError("end_step", f"before start_step {row['start_step']}")
        elif name == "queries":
            if row["kind"] not in QUERY_KINDS:
                raise _FieldError("kind", f"expected one of {QUERY_KINDS}, got {row['kind']!r}")
            with _field("segment_ids"):
                if not isinstance(row["segment_ids"], list):
                    raise StoreError(f"expected a list of segment ids, got {row['segment_ids']!r}")
                _check_query_shape(row["kind"], row["segment_ids"])
                self._known_segments(row["segment_ids"], known)
            with _field("assignee"):
                if row["assignee"] is not None:
                    check_source(row["assignee"])
            if row["status"] not in QUERY_STATUSES:
                raise _FieldError("status", f"expected one of {QUERY_STATUSES}, got {row['status']!r}")
            if not isinstance(row["meta"], dict):
                raise _FieldError("meta", "expected a JSON object")
            known["queries"][row["id"]] = row
        elif name in ("labels", "labels_taken_back"):
            row.update(self._import_label(name, row, known))
        elif not isinstance(row["status"], dict):
            raise _FieldError("status", "expected a JSON object")
        return row

    def _import_label(self, name: str, row: dict, known: dict[str, dict[str, Any]]) -> dict:
        """The checked value and payload of an imported label (as :meth:`_label_row` makes them)."""
        if row["id"] in known["labels"]:
            raise _FieldError("id", f"label id {row['id']} appears twice in this file")
        known["labels"][row["id"]] = name
        with _field("source"):
            check_source(row["source"])
        with _field("note"):
            _check_note(row["note"])
        if row["kind"] not in LABEL_KINDS:
            raise _FieldError("kind", f"expected one of {LABEL_KINDS}, got {row['kind']!r}")
        with _field("segment_ids"):
            if not isinstance(row["segment_ids"], list) or not all(isinstance(i, str) for i in row["segment_ids"]):
                raise StoreError(f"expected a list of segment ids, got {row['segment_ids']!r}")
            self._known_segments(row["segment_ids"], known)
        query = None
        if row["query_id"] is not None:
            with _field("query_id"):
                query = self._known_query(row["query_id"], known)
                if query["kind"] != row["kind"] or list(query["segment_ids"]) != row["segment_ids"]:
                    raise StoreError(f"query {row['query_id']} asks for a {query['kind']} on {query['segment_ids']}")
                if name == "labels":
                    pair = (row["query_id"], row["source"])
                    if pair in known:
                        raise StoreError(f"{row['source']} labels query {row['query_id']} twice in this file")
                    known[pair] = True
        if not isinstance(row["payload"], dict):
            raise _FieldError("payload", "expected a JSON object")
        answer = {"value": row["value"], **row["payload"]} if row["kind"] == "preference" else row["payload"]
        with _field("value" if row["kind"] == "preference" else "payload"):
            checked = self._label_row(
                row["kind"], row["segment_ids"], row["source"], row["note"], row["run"], answer, query=query
            )
        if name == "labels_taken_back":
            with _field("taken_back_by"):
                if row["taken_back_by"] is not None:
                    check_source(row["taken_back_by"])
        payload = checked["payload"]
        if row["payload"].get("authenticated") is False:  # a label typed into an app that ran open
            payload = {**payload, "authenticated": False}
        return {"value": checked["value"], "payload": payload}

    def _known_segments(self, ids: list[str], known: dict[str, dict[str, Any]]) -> None:
        missing = [i for i in ids if i not in known["segments"]]
        if missing:
            with self.engine.connect() as conn:
                existing = self._existing_ids(conn, missing)
            if set(missing) - existing:
                raise StoreError(f"unknown segment id(s) {sorted(set(missing) - existing)}")

    def _known_query(self, query_id: str, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if query_id in known["queries"]:
            return known["queries"][query_id]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(queries_table).where(queries_table.c.id == query_id)).first()
        if row is None:
            raise StoreError(f"unknown query id {query_id!r}")
        return dict(row._mapping)


class _FieldError(Exception):
    """A field of an imported row that the store refuses."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field, self.message = field, message


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Reports a StoreError raised inside as a bad ``name`` field."""
    try:
        yield
    except StoreError as e:
        raise _FieldError(name, str(e)) from None


def _query(row, leases: dict[str, float]) -> Query:
    return Query(
        id=row.id,
        run=row.run,
        kind=row.kind,
        segment_ids=list(row.segment_ids),
        status=row.status,
        assignee=row.assignee,
        meta=row.meta,
        created_at=row.created_at,
        closed_at=row.closed_at,
        leases=dict(leases),
    )


def _label(row) -> Label:
    return Label(
        id=row.id,
        run=row.run,
        kind=row.kind,
        segment_ids=list(row.segment_ids),
        value=row.value,
        payload=row.payload,
        source=row.source,
        note=row.note,
        query_id=row.query_id,
        created_at=row.created_at,
    )


def _live_leases(conn: Connection, now: float, query_id: str | None = None) -> dict[str, dict[str, float]]:
    """Live leases (of one query, or all) by query id: holder -> until."""
    stmt = sa.select(leases_table).where(leases_table.c.until >= now)
    if query_id is not None:
        stmt = stmt.where(leases_table.c.query_id == query_id)
    out: dict[str, dict[str, float]] = {}
    for row in conn.execute(stmt):
        out.setdefault(row.query_id, {})[row.holder] = row.until
    return out


def _taken(query_id, now: float):
    """How many places of a query are taken (its live leases plus its labels), as an SQL expression; ``query_id``
    a value or a column."""
    leases = (
        sa.select(sa.func.count())
        .where(leases_table.c.query_id == query_id, leases_table.c.until >= now)
        .scalar_subquery()
    )
    labels = sa.select(sa.func.count()).where(labels_table.c.query_id == query_id).scalar_subquery()
    return leases + labels


def _take_back(conn: Connection, row, by: str | None, reason: str, now: float) -> None:
    """Move a standing label to the audit table, with who took it back (None: the store), when and why."""
    fields = {c.name: row._mapping[c.name] for c in labels_table.columns}
    conn.execute(taken_back_table.insert().values(**fields, taken_back_at=now, taken_back_by=by, reason=reason))
    conn.execute(labels_table.delete().where(labels_table.c.id == row.id))


def _check_redundancy(redundancy: int) -> None:
    if not isinstance(redundancy, int) or isinstance(redundancy, bool) or redundancy < 1:
        raise StoreError(f"redundancy must be an integer >= 1, got {redundancy!r}")


def _check_query_shape(kind: str, segment_ids: Sequence[str]) -> list[str]:
    if kind not in QUERY_KINDS:
        raise StoreError(f"query kind must be one of {QUERY_KINDS}, got {kind!r}")
    if isinstance(segment_ids, str) or not all(isinstance(i, str) for i in segment_ids):
        raise StoreError(f"segment_ids must be a list of segment ids, got {segment_ids!r}")
    segment_ids = list(segment_ids)
    if kind == "preference" and len(segment_ids) != 2:
        raise StoreError(f"a preference query compares 2 segments, got {len(segment_ids)}")
    if kind == "ranking" and (len(segment_ids) < 2 or len(set(segment_ids)) != len(segment_ids)):
        raise StoreError(f"a ranking query needs 2 or more distinct segments, got {segment_ids}")
    return segment_ids


def _check_direction_size(query: dict, payload: dict) -> None:
    """A correction answering a query has the direction size the query asks for: that of its direction keys (the
    robot's controls, e.g. 2 for a drone whose state has 4 numbers), or without keys its state's."""
    meta = query["meta"] if isinstance(query["meta"], dict) else {}
    keys = meta.get("keys") or {}
    state = meta.get("state") or payload["state"]
    expected = len(next(iter(keys.values()))) if keys else len(state)
    if len(payload["direction"]) != expected:
        asked = "its direction keys'" if keys else "its state's"
        raise StoreError(
            f"a correction to query {query['id']} has a direction of {expected} numbers ({asked} size), "
            f"got {len(payload['direction'])}"
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
