"""What the annotation app does, without the UI: serve queries from the feedback store, take answers, report.

Every function the app's buttons call goes through :class:`AnnotationService`, so the browser, the HTTP API
and the ``--auto`` teacher share one path. Answers are checked before anything is written; what the store
refuses comes back as an :class:`AnnotationError` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from robofeedback.data.annotators import AnnotatorRegistry, check_not_lookalike, live_humans
from robofeedback.data.store import FeedbackStore, Query, StoreError

KINDS = ("preference", "ranking", "correction")
# The correction tab's buttons (and arrow keys), as the game's direction keys for 1, 2 or 3 controls.
BUTTONS = {
    "left": {1: "-", 2: "left", 3: "x-"},
    "right": {1: "+", 2: "right", 3: "x+"},
    "up": {2: "up", 3: "y+"},
    "down": {2: "down", 3: "y-"},
    "raise": {3: "z+"},
    "lower": {3: "z-"},
}
PREFERENCE_CHOICES = {"a": "Left", "b": "Right", "equal": "Equal", "skip": "Can't tell"}


class AnnotationError(ValueError):
    """A request the app refuses (no name, an unknown or closed query, a malformed answer); nothing was stored."""


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: the label source, and whether the store checked it (a secret it issued)."""

    source: str
    authenticated: bool


def parse_authorization(header: str | None) -> tuple[str | None, str | None]:
    """(name, secret) from an ``Authorization`` header: ``Bearer <secret>`` (programs) or HTTP Basic
    ``<name>:<secret>`` (people, from the browser's login); (None, None) when there is none."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return None, value.strip() or None
    if scheme.lower() == "basic":
        try:
            name, _, secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return name, secret or None
    return None, None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine alone (127.0.0.1, ::1, localhost), so that an app bound there is
    reachable from no other machine."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


@dataclass
class AppConfig:
    """How the app serves queries: which run (None: all), how long a lease lasts, how many people label each."""

    run: str | None = None
    lease_seconds: float = 120.0
    redundancy: int = 1


class AnnotationService:
    """Serves the store's pending queries to annotators and records their answers."""

    def __init__(self, store: FeedbackStore | str | Path, config: AppConfig | None = None, open_allowed: bool = True):
        self.store = store if isinstance(store, FeedbackStore) else FeedbackStore(store)
        self.config = config or AppConfig()
        if self.config.redundancy < 1 or self.config.lease_seconds <= 0:
            raise ValueError(f"redundancy must be >= 1 and lease_seconds > 0, got {self.config}")
        self.registry = AnnotatorRegistry(self.store)
        self.open_allowed = open_allowed  # False when the app is reachable from other machines

    # -- who is asking ----------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether people may label under a name they type: only while no person is registered, and only where
        the app is reachable from this machine alone."""
        return self.open_allowed and not self.registry.humans()

    def authenticate(self, authorization: str | None) -> str | None:
        """The source whose live secret the ``Authorization`` header carries, or None."""
        name, secret = parse_authorization(authorization)
        return self.registry.authenticate(secret, name=name)

    def identify(self, name: str | None, authorization: str | None = None) -> Identity:
        """Who labels: the holder of the credential in ``authorization`` (the typed ``name`` is ignored then), or,
        in an app that runs open, ``human:<name>`` for the typed name, unauthenticated; AnnotationError otherwise."""
        if authorization:
            source = self.authenticate(authorization)
            if source is None:
                raise AnnotationError("these credentials are not valid: mistyped, or the secret was revoked")
            return Identity(source, True)
        registered = self.registry.list()  # one read serves the open check and the name checks
        if not (self.open_allowed and not live_humans(registered)):
            raise AnnotationError("log in first: this app asks each annotator for the secret the store issued them")
        try:
            source = self.registry.source_for(name or "")
            if any(a.source == source for a in registered):
                raise StoreError(f"{source} is a registered annotator: log in with the secret the store issued")
            check_not_lookalike(source, {a.source for a in registered} | self.registry.labelled_sources())
        except StoreError as e:
            raise AnnotationError(str(e)) from None
        return Identity(source, False)

    # -- queries ----------------------------------------------------------------------------

    def next(self, name: str | None, kind: str, authorization: str | None = None) -> dict[str, Any]:
        """The next query of ``kind`` for this annotator (the one they hold, if any), as the app shows it."""
        source = self.identify(name, authorization).source
        if kind not in KINDS:
            raise AnnotationError(f"kind must be one of {KINDS}, got {kind!r}")
        cfg = self.config
        try:
            query = self.store.lease_query(
                source, kinds=[kind], run=cfg.run, lease_seconds=cfg.lease_seconds, redundancy=cfg.redundancy
            )
        except StoreError as e:
            raise AnnotationError(str(e)) from None
        return self.describe(query, source, kind)

    def describe(self, query: Query | None, source: str, kind: str) -> dict[str, Any]:
        if query is None:
            waiting = "a trainer to post some" if kind != "correction" else "the robot to ask"
            return {
                "id": None,
                "kind": kind,
                "message": f"No {kind} queries waiting: waiting for {waiting}.",
                "progress": self.progress(source),
            }
        status = self.store.run_statuses().get(query.run, {})
        out: dict[str, Any] = {
            "id": query.id,
            "kind": query.kind,
            "run": query.run,
            "task": status.get("task") or status.get("env") or query.run,
            "segment_ids": query.segment_ids,
            "progress": self.progress(source, query.run, status),
        }
        if query.kind in ("preference", "ranking"):
            segments = self.store.get_segments(query.segment_ids)
            missing = [s.id for s in segments if not (s.video_path and Path(s.video_path).is_file())]
            out["videos"] = [f"/media/segment/{quote(s.id, safe='')}" for s in segments]
            out["missing_videos"] = missing
        elif query.kind == "correction":
            meta = query.meta
            out.update(
                state=meta.get("state"),
                t=meta.get("t", 0),
                keys=meta.get("keys") or {},
                robot_pixel=meta.get("robot_pixel"),
                frame=f"/media/query/{query.id}/frame" if meta.get("frame_path") else None,
            )
        return out

    def answer(
        self,
        name: str | None,
        query_id: str | None,
        note: str | None = None,
        authorization: str | None = None,
        **answer,
    ) -> dict[str, Any]:
        """Store this annotator's answer to ``query_id`` and return their next query of the same kind."""
        who = self.identify(name, authorization)
        if not query_id or not isinstance(query_id, str):
            raise AnnotationError("no query is shown: load the next one first")
        try:
            query = self.store.get_query(query_id)
            if query.kind == "correction":
                answer = self._correction(query, answer)
            if query.kind == "ranking":
                answer = self._ranking(query, answer)
            self.store.answer_query(
                query_id,
                who.source,
                note=(note or "").strip() or None,
                redundancy=self.config.redundancy,
                authenticated=who.authenticated,
                **answer,
            )
        except StoreError as e:
            raise AnnotationError(str(e)) from None
        return self.next(name, query.kind, authorization)

    def _correction(self, query: Query, answer: dict) -> dict:
        keys = query.meta.get("keys") or {}
        if "button" in answer:
            button = answer.pop("button")
            key = BUTTONS.get(button, {}).get(len(next(iter(keys.values()), [])))
            if key is None:
                raise AnnotationError(f"the {button!r} button gives no direction in this game; use {list(keys)}")
            answer["key"] = key
        if "key" in answer:
            key = answer.pop("key")
            if key not in keys:
                raise AnnotationError(f"direction key must be one of {list(keys)}, got {key!r}")
            answer["direction"] = keys[key]
        elif "click" in answer:
            pixel = query.meta.get("robot_pixel")
            if pixel is None:
                raise AnnotationError("this scene takes the direction keys, not a click")
            dx, dy = (float(c) - float(p) for c, p in zip(answer.pop("click"), pixel, strict=True))
            if np.hypot(dx, dy) < 1.0:
                raise AnnotationError("click away from the robot to give a direction")
            answer["direction"] = [dx / np.hypot(dx, dy), -dy / np.hypot(dx, dy)]  # image down is -y
        return {"state": query.meta.get("state"), "t": query.meta.get("t", 0), **answer}

    @staticmethod
    def _ranking(query: Query, answer: dict) -> dict:
        """Rankings come in by position (1 = the first video shown); the store keeps segment ids."""
        ids = query.segment_ids

        def item(position, what):
            try:
                if isinstance(position, bool) or (isinstance(position, float) and not position.is_integer()):
                    raise ValueError(position)  # 1.9 is no video's number (int() would make it 1)
                index = int(position) - 1
            except (TypeError, ValueError):
                raise AnnotationError(f"{what} must be a video number 1-{len(ids)}, got {position!r}") from None
            if not 0 <= index < len(ids):
                raise AnnotationError(f"{what} must be a video number 1-{len(ids)}, got {position!r}")
            return ids[index]

        order = answer.get("order")
        if order:
            positions = [p for p in re.split(r"[,\s>]+", str(order).strip()) if p] if isinstance(order, str) else order
            return {"order": [item(p, "each item of the order") for p in positions]}
        return {"best": item(answer.get("best"), "best"), "worst": item(answer.get("worst"), "worst")}

    def undo(self, name: str | None, authorization: str | None = None) -> dict[str, Any]:
        """Take back this annotator's last preference (their own: labels are taken back by who gave them) and show
        its query again."""
        source = self.identify(name, authorization).source
        try:
            label = self.store.undo_last(source, run=self.config.run)
        except StoreError as e:
            raise AnnotationError(str(e)) from None
        if label is None:
            raise AnnotationError("nothing to undo: you have given no labels yet")
        query = self.store.get_query(label.query_id) if label.query_id else None
        return self.describe(query, source, "preference")

    # -- progress and status ----------------------------------------------------------------

    def progress(self, source: str, run: str | None = None, status: dict | None = None) -> dict[str, Any]:
        """This annotator's labels (total, in the last 10 minutes per minute), the run's answered / budget, the
        learned reward's agreement with them, and agreement between annotators on queries labelled twice (``status``:
        the run's status, when the caller has read it already)."""
        mine = self.store.labels(source=source)
        recent = [lb for lb in mine if lb.created_at > time.time() - 600]
        per_minute = len(recent) / max(1.0, (time.time() - recent[0].created_at) / 60) if recent else 0.0
        out: dict[str, Any] = {"source": source, "labels": len(mine), "per_minute": round(per_minute, 1)}
        if run is not None:
            status = status if status is not None else self.store.run_statuses().get(run, {})
            answered = sum(n for key, n in self.store.counts(run=run).items() if key.startswith("labels."))
            out.update(run=run, answered=answered, budget=status.get("budget"))
            agreement = (status.get("agreement") or {}).get(source)
            if agreement is not None:
                out["reward_agreement"] = agreement
            between = self.annotator_agreement(run)
            if between is not None:
                out["annotator_agreement"] = between
        return out

    def annotator_agreement(self, run: str) -> float | None:
        """Over preference queries of ``run`` labelled by two or more people, the fraction of label pairs that
        agree (None when there are none)."""
        by_query: dict[str, list[str]] = {}
        for lb in self.store.labels(kind="preference", run=run):
            if lb.query_id and lb.value != "skip":
                by_query.setdefault(lb.query_id, []).append(lb.value)
        pairs = [(a, b) for values in by_query.values() for i, a in enumerate(values) for b in values[i + 1 :]]
        return round(float(np.mean([a == b for a, b in pairs])), 4) if pairs else None

    def training(self) -> list[dict[str, Any]]:
        """Every run's status (env, steps, latest evaluation, labels), most recently updated first."""
        rows = []
        for run, status in self.store.run_statuses().items():
            counts = self.store.counts(run=run)
            rows.append({"run": run, **status, "pending": counts.get("queries.pending", 0)})
        return rows

    # -- factor rankings --------------------------------------------------------------------

    def factor_tasks(self) -> dict[str, list[str]]:
        """Each task (env spec) whose segments in the store carry named factors, with those names; tasks a
        trainer asked to have ranked (a pending factor_ranking query naming ``task`` and ``factors``) too."""
        tasks: dict[str, list[str]] = {}
        for query in self.store.queries(kind="factor_ranking", status="pending"):
            if query.meta.get("task") and query.meta.get("factors"):
                tasks[query.meta["task"]] = list(query.meta["factors"])
        for spec, names in self.store.segment_factors().items():
            tasks.setdefault(spec, names)
        return tasks

    def rank_factors(
        self,
        name: str | None,
        task: str,
        order: list[str],
        costs: list[str] | None = None,
        margins: str | None = None,
        authorization: str | None = None,
    ) -> int:
        """Store this annotator's ranking of ``task``'s factors (most important first); ``costs`` are the factors
        where less is better; ``margins`` is ``name=value, ...`` (HERON's sigma per factor)."""
        source = self.identify(name, authorization).source
        known = self.factor_tasks().get(task)
        if known is None:
            raise AnnotationError(f"unknown task {task!r}: the store has no factors for it")
        unknown = [f for f in order if f not in known]
        if unknown:
            raise AnnotationError(f"unknown factor(s) {unknown} for {task}; its factors are {known}")
        signs = {f: (-1 if f in (costs or []) else 1) for f in order}
        parsed = {}
        for part in [p for p in re.split(r"[,;]", margins or "") if p.strip()]:
            key, _, value = part.partition("=")
            try:
                parsed[key.strip()] = float(value)
            except ValueError:
                raise AnnotationError(f"margins look like progress=1, alive=0.5; got {part.strip()!r}") from None
        try:
            label = self.store.set_factor_ranking(task, order, source, signs=signs, margins=parsed)
            for query in self.store.queries(kind="factor_ranking", status="pending"):
                if query.meta.get("task") == task:
                    self.store.close_query(query.id)
        except StoreError as e:
            raise AnnotationError(str(e)) from None
        return label

    # -- media ------------------------------------------------------------------------------

    def segment_video(self, segment_id: str) -> Path:
        try:
            (segment,) = self.store.get_segments([segment_id])
        except StoreError as e:
            raise FileNotFoundError(str(e)) from None
        if not segment.video_path or not Path(segment.video_path).is_file():
            raise FileNotFoundError(f"segment {segment_id} has no video file")
        return Path(segment.video_path)

    def query_frame(self, query_id: str) -> Path:
        try:
            path = self.store.get_query(query_id).meta.get("frame_path")
        except StoreError as e:
            raise FileNotFoundError(str(e)) from None
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"query {query_id} has no frame")
        return Path(path)

    def eval_video(self, run: str) -> Path:
        path = self.store.run_statuses().get(run, {}).get("eval_video")
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"run {run!r} has no evaluation video yet")
        return Path(path)
