"""Who may label: annotator names and the credentials the store issues.

A person's name is normalised (Unicode NFKC, spaces to dashes) and kept to a small safe alphabet, so that a name
cannot hide control or zero-width characters or borrow letters from another script; a name that differs from one
the store already knows only in case, separators or easily confused characters (``0``/``o``, ``1``/``l``/``i``,
``5``/``s``) is refused as a look-alike.

:class:`AnnotatorRegistry` keeps, in the feedback store's database, one secret per annotator (a person,
``human:<name>``, or a program, ``script:<teacher>``, ``vlm:<model>``, ``llm:<model>``): only its SHA-256 is kept
(the secret is 32 random bytes, so a slow password hash would add nothing), it is shown once when issued, and a
revoked one stops working at once. Secrets never travel with the store's exports.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa

from robofeedback.data.store import FeedbackStore, StoreError, check_source, labels_table

MAX_NAME_CHARS = 64
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PROGRAM_PREFIXES = ("script", "vlm", "llm")
_CONFUSABLE = str.maketrans(
    {"0": "o", "1": "l", "i": "l", "5": "s", "2": "z", "8": "b", "-": None, "_": None, ".": None}
)

_metadata = sa.MetaData()
annotators_table = sa.Table(
    "annotators",
    _metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
)


def normalize_name(name: str | None) -> str:
    """A person's name as the store keeps it: NFKC, trimmed, spaces to dashes, letters, digits, ``.``, ``_`` and
    ``-`` only, at most MAX_NAME_CHARS; StoreError otherwise."""
    text = unicodedata.normalize("NFKC", name or "").strip()
    if not text:
        raise StoreError("enter your name first: it is recorded with every label you give")
    text = re.sub(r"\s+", "-", text)
    if len(text) > MAX_NAME_CHARS or not NAME_PATTERN.fullmatch(text):
        raise StoreError(
            f"a name has at most {MAX_NAME_CHARS} characters, from letters, digits, '.', '_' and '-' (starting with "
            f"a letter or digit), got {name!r}"
        )
    return text


def skeleton(name: str) -> str:
    """What a name looks like: lower case, separators dropped, easily confused characters folded together."""
    return name.casefold().translate(_CONFUSABLE)


def check_not_lookalike(source: str, known: set[str]) -> None:
    """StoreError when ``source`` differs from a known source but looks like it (same prefix and skeleton)."""
    prefix, _, name = source.partition(":")
    for other in known:
        other_prefix, _, other_name = other.partition(":")
        if other != source and other_prefix == prefix and skeleton(other_name) == skeleton(name):
            raise StoreError(f"{source!r} looks like {other!r}, whom the store already knows; choose another name")


@dataclass
class Annotator:
    source: str
    created_at: float
    revoked_at: float | None = None


def live_humans(annotators: list[Annotator]) -> list[str]:
    """The people among ``annotators`` whose secret is live."""
    return [a.source for a in annotators if a.revoked_at is None and a.source.startswith("human:")]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AnnotatorRegistry:
    """The annotators a store knows, with their hashed secrets (a table of the store's own database)."""

    def __init__(self, store: FeedbackStore):
        self.store = store
        with store.write() as conn:
            annotators_table.create(conn, checkfirst=True)

    def source_for(self, name: str, program: bool = False) -> str:
        """The source a registered name labels as: ``human:<name>`` for a person, the name itself for a program."""
        if program:
            prefix = name.partition(":")[0]
            if prefix not in PROGRAM_PREFIXES:
                raise StoreError(f"a program's name is {'/'.join(PROGRAM_PREFIXES)}:<name>, got {name!r}")
            return check_source(name)
        if name.startswith("human:"):
            name = name.removeprefix("human:")
        return check_source(f"human:{normalize_name(name)}")

    def known_sources(self) -> set[str]:
        """Every source that has labelled or is registered (for the look-alike check)."""
        return {a.source for a in self.list()} | self.labelled_sources()

    def labelled_sources(self) -> set[str]:
        """Every source with a standing label."""
        with self.store.engine.connect() as conn:
            return set(conn.execute(sa.select(labels_table.c.source).distinct()).scalars())

    def add(self, name: str, program: bool = False, replace: bool = False) -> tuple[str, str]:
        """Register ``name`` and issue its secret; returns (source, secret). The secret is not kept: only its hash.
        With ``replace`` an existing annotator gets a new secret (the old one stops working)."""
        source = self.source_for(name, program)
        check_not_lookalike(source, self.known_sources())
        secret = secrets.token_urlsafe(32)
        row = {"secret_sha256": _digest(secret), "created_at": time.time(), "revoked_at": None}
        with self.store.write() as conn:
            exists = conn.execute(sa.select(annotators_table.c.source).where(annotators_table.c.source == source))
            if exists.first() is not None:
                if not replace:
                    raise StoreError(f"{source} is already registered; revoke it first, or issue a new secret")
                conn.execute(annotators_table.update().where(annotators_table.c.source == source).values(**row))
            else:
                conn.execute(annotators_table.insert().values(source=source, **row))
        return source, secret

    def revoke(self, name: str, program: bool = False) -> str:
        """Revoke ``name``'s secret; returns its source."""
        source = self.source_for(name, program or name.partition(":")[0] in PROGRAM_PREFIXES)
        with self.store.write() as conn:
            done = conn.execute(
                annotators_table.update()
                .where(annotators_table.c.source == source)
                .where(annotators_table.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            ).rowcount
        if done != 1:
            raise StoreError(f"{source} is not a registered annotator with a live secret")
        return source

    def list(self) -> list[Annotator]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(annotators_table).order_by(annotators_table.c.source))
            return [Annotator(r.source, r.created_at, r.revoked_at) for r in rows]

    def humans(self) -> list[str]:
        """The people with a live secret."""
        return live_humans(self.list())

    def authenticate(self, secret: str | None, name: str | None = None) -> str | None:
        """The source whose live secret ``secret`` is (and, when ``name`` is given, whose name or source it is), or
        None."""
        if not secret:
            return None
        digest = _digest(secret)
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(annotators_table)
                .where(annotators_table.c.secret_sha256 == digest)
                .where(annotators_table.c.revoked_at.is_(None))
            ).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, digest):
            return None
        if name is not None and name not in (row.source, row.source.removeprefix("human:")):
            return None
        return row.source
