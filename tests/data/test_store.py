import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from robofeedback.data import collect
from robofeedback.data.store import (
    DamagedStoreError,
    FeedbackStore,
    QueryStateError,
    StoreError,
    UnknownSegmentError,
    labels_table,
)
from robofeedback.envs import make


@pytest.fixture(scope="module")
def segments():
    env = make("panda:PandaPush-v3", seed=0)  # dict observations
    trajectories = collect(env, None, n_episodes=2, seed=0)
    return [t.segment(s, s + 10) for t in trajectories for s in (0, 20, 40)]


@pytest.fixture
def store(tmp_path, segments):
    store = FeedbackStore(tmp_path / "fb.db")
    store.add_segments(segments, run="r")
    return store


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


def test_segments_round_trip_exactly(store, segments):
    seg = segments[1]
    back = store.get_segment(seg.id)
    _same(back.obs, seg.obs)
    _same(back.actions, seg.actions)
    _same(back.env_rewards, seg.env_rewards)
    _same(back.agent_path, seg.agent_path)
    _same(back.factors, seg.factors)
    assert (back.env_spec, back.start_step, back.end_step, back.run) == ("panda:PandaPush-v3", 20, 30, "r")
    assert back.meta["trajectory_id"] == seg.trajectory.id
    store.add_segments(segments, run="r")  # adding again changes nothing
    assert store.counts()["segments"] == len(segments)


def test_segments_know_where_their_video_and_frames_are(tmp_path, segments):
    store = FeedbackStore(tmp_path / "paths.db")
    store.add_segments(
        segments[:2], video_paths=["a.mp4", None], frames_paths=[None, "frames/b"], meta=[{"camera": "corner"}, {}]
    )
    a, b = store.get_segments([segments[0].id, segments[1].id])
    assert (a.video_path, a.frames_path, b.video_path, b.frames_path) == ("a.mp4", None, None, "frames/b")
    assert a.meta["camera"] == "corner"
    with pytest.raises(StoreError, match="JSON"):
        store.add_segment(segments[2], meta={"bad": object()})


def test_sqlite_file_is_in_wal_mode(store, tmp_path):
    with sqlite3.connect(tmp_path / "fb.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_labels_of_every_kind_with_provenance(store, segments):
    a, b, c = (s.id for s in segments[:3])
    before = time.time()
    pid = store.add_preference(a, b, "a", source="human:ada", run="r", note="closer to the goal")
    rid = store.add_ranking([a, b, c], source="llm:qwen", order=[c, a, b], run="r")
    cid = store.add_correction([0.1, 0.2], [0.0, -1.0], t=3, source="human:ada", segment_id=a, run="r", game="drone")
    fid = store.set_factor_ranking(
        "bullet:AntBulletEnv-v0",
        ["progress", "alive"],
        source="human:ada",
        signs={"progress": 1},
        margins={"alive": 0.5},
    )
    vid = store.add_violation([0.4, 0.1], t=9, source="script:simulated-human", run="r", cut={"h": [-1.0], "b": -0.5})
    labels = {lb.id: lb for lb in store.labels()}
    assert labels[vid].payload == {"state": [0.4, 0.1], "t": 9, "cut": {"h": [-1.0], "b": -0.5}}
    assert labels[pid].value == "a" and labels[pid].note == "closer to the goal" and labels[pid].source == "human:ada"
    assert labels[pid].created_at >= before
    assert labels[rid].payload == {"order": [c, a, b], "best": c, "worst": b}
    assert labels[cid].payload == {"state": [0.1, 0.2], "direction": [0.0, -1.0], "t": 3, "game": "drone"}
    assert labels[cid].segment_ids == [a]
    assert store.factor_ranking("bullet:AntBulletEnv-v0").payload["order"] == ["progress", "alive"]
    assert labels[fid].payload["margins"] == {"alive": 0.5}
    assert [lb.kind for lb in store.labels(run="r")] == ["preference", "ranking", "correction", "violation"]


def test_factor_ranking_is_one_per_task_and_source(store):
    store.set_factor_ranking("panda:PandaPush-v3", ["object_to_target", "ctrl_cost"], source="human:ada")
    store.set_factor_ranking("panda:PandaPush-v3", ["ctrl_cost", "object_to_target"], source="human:ada")
    store.set_factor_ranking("panda:PandaPush-v3", ["object_to_target"], source="human:bob")
    rankings = store.labels(kind="factor_ranking")
    assert len(rankings) == 2
    assert store.factor_ranking("panda:PandaPush-v3", source="human:ada").payload["order"][0] == "ctrl_cost"


@pytest.mark.parametrize(
    ("write", "error"),
    [
        (lambda s, a, b: s.add_preference(a, "nope:0-10", "a", "human:ada"), UnknownSegmentError),
        (lambda s, a, b: s.add_preference(a, b, "left", "human:ada"), StoreError),
        (lambda s, a, b: s.add_preference(a, a, "a", "human:ada"), StoreError),
        (lambda s, a, b: s.add_preference(a, b, "a", "ada"), StoreError),
        (lambda s, a, b: s.add_preference(a, b, "a", "robot:x"), StoreError),
        (lambda s, a, b: s.add_ranking([a, b], "human:ada", order=[a]), StoreError),
        (lambda s, a, b: s.add_ranking([a, b], "human:ada", best=a, worst=a), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], [0, 0], 1, "human:ada"), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], [np.nan, 1], 1, "human:ada"), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], [[1, 0]], 1, "human:ada"), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], ["up"], 1, "human:ada"), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], [1, 0], -1, "human:ada"), StoreError),
        (lambda s, a, b: s.add_correction([0, 0], [1, 0], 1, "human:ada", segment_id="nope"), UnknownSegmentError),
        (lambda s, a, b: s.add_violation([0, np.inf], 1, "script:simulated-human"), StoreError),
        (lambda s, a, b: s.add_violation([0, 0], -2, "script:simulated-human"), StoreError),
        (lambda s, a, b: s.add_query("violation", []), StoreError),  # seen, never asked for
        (lambda s, a, b: s.set_factor_ranking("x", ["p", "p"], "human:ada"), StoreError),
        (lambda s, a, b: s.set_factor_ranking("x", ["p"], "human:ada", signs={"p": 2}), StoreError),
        (lambda s, a, b: s.set_factor_ranking("x", ["p"], "human:ada", margins={"q": 1.0}), StoreError),
        (lambda s, a, b: s.add_preference(a, b, "a", "script:heron", level=object()), StoreError),
    ],
)
def test_bad_input_raises_and_writes_nothing(store, segments, write, error):
    before = store.counts()
    with pytest.raises(error):
        write(store, segments[0].id, segments[1].id)
    assert store.counts() == before


def test_queries_are_answered_once(store, segments):
    a, b = segments[0].id, segments[1].id
    q = store.add_query("preference", [a, b], run="r", meta={"task": "push the cube"})
    assert store.get_query(q).status == "pending"
    label_id = store.answer_query(q, "human:ada", value="b")
    assert store.get_query(q).status == "answered"
    (label,) = store.labels(kind="preference")
    assert (label.id, label.query_id, label.segment_ids, label.value) == (label_id, q, [a, b], "b")
    with pytest.raises(QueryStateError, match="already answered"):
        store.answer_query(q, "human:bob", value="a")
    assert len(store.labels()) == 1
    skipped = store.add_query("preference", [a, b], run="r")
    store.answer_query(skipped, "human:ada", value="skip")
    assert store.get_query(skipped).status == "skipped"
    with pytest.raises(QueryStateError, match="unknown query"):
        store.answer_query("missing", "human:ada", value="a")
    with pytest.raises(UnknownSegmentError):
        store.add_query("preference", [a, "nope"], run="r")
    with pytest.raises(StoreError, match="2 segments"):
        store.add_query("preference", [a], run="r")


def test_leases_serve_each_query_to_one_annotator(store, segments):
    ids = [s.id for s in segments]
    q1 = store.add_query("preference", ids[:2], run="r")
    q2 = store.add_query("preference", ids[2:4], run="r")
    q3 = store.add_query("preference", ids[4:6], run="r", assignee="human:bob")
    first = store.lease_query("human:ada")
    second = store.lease_query("human:carl")
    assert {first.id, second.id} == {q1, q2}
    assert store.lease_query("human:dee") is None  # q3 is bob's
    assert store.lease_query("human:bob").id == q3
    with pytest.raises(QueryStateError, match="for human:bob"):
        store.answer_query(q3, "human:ada", value="a")
    store.release_query(first.id, "human:ada")
    assert store.lease_query("human:dee").id == first.id
    expired_lease = store.lease_query("human:eve", lease_seconds=-1)  # nothing left: all leased
    assert expired_lease is None
    assert store.expire_queries(run="r") == 3
    assert {q.status for q in store.queries(run="r")} == {"expired"}


def test_a_lapsed_lease_returns_the_query_to_the_pool(store, segments):
    q = store.add_query("preference", [segments[0].id, segments[1].id], run="r")
    assert store.lease_query("human:ada", lease_seconds=0.05).id == q
    assert store.lease_query("human:bob") is None
    time.sleep(0.1)
    assert store.lease_query("human:bob").id == q


def test_export_import_round_trips_exactly(store, segments, tmp_path):
    a, b, c = (s.id for s in segments[:3])
    q = store.add_query("preference", [a, b], run="r", meta={"shown": [1, 2.5]})
    store.answer_query(q, "script:oracle", value="equal", note="tie")
    store.add_preference(b, c, "b", "script:heron", run="r", note="decided at level 2 (alive)", level=2)
    store.add_ranking([a, b, c], "human:ada", best=a, worst=c, run="r")
    store.add_correction([1.5, -2.0], [0.3, 0.4], 7, "human:ada")
    store.add_violation([0.5, 0.25], 8, "human:ada", cut={"h": [-0.5, -1.0], "b": -1.0})
    store.set_factor_ranking("metaworld:reach", ["obj_to_target"], "human:ada")
    store.set_run_status("r", steps=100, eval={"success_rate": 0.5})
    first = store.export_jsonl(tmp_path / "one.jsonl")
    other = FeedbackStore(tmp_path / "other.db")
    assert other.import_jsonl(first) == {"segments": 6, "queries": 1, "labels": 6, "labels_taken_back": 0, "runs": 1}
    assert other.run_statuses()["r"]["eval"] == {"success_rate": 0.5}
    assert [lb.payload for lb in other.labels(kind="preference", source="script:heron")] == [{"level": 2}]
    second = other.export_jsonl(tmp_path / "two.jsonl")
    assert first.read_bytes() == second.read_bytes()
    _same(other.get_segment(a).obs, segments[0].obs)
    with pytest.raises(StoreError, match="clash"):
        other.import_jsonl(first)
    assert other.export_jsonl(tmp_path / "three.jsonl").read_bytes() == first.read_bytes()
    next_label = other.add_preference(a, b, "a", "human:bob")
    assert next_label == max(lb.id for lb in store.labels()) + 1


WRITER = """
import sys
from robofeedback.data.store import FeedbackStore
store = FeedbackStore(sys.argv[1])
a, b = sys.argv[2], sys.argv[3]
while True:
    label = store.add_preference(a, b, "a", "script:writer")
    print(label, flush=True)
"""


def test_labels_survive_sigkill(store, segments, tmp_path):
    a, b = segments[0].id, segments[1].id
    path = tmp_path / "fb.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), a, b], stdout=subprocess.PIPE, text=True)
    committed = []
    while len(committed) < 200:
        committed.append(int(child.stdout.readline()))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reopened = FeedbackStore(path)
    stored = {lb.id for lb in reopened.labels(source="script:writer")}
    assert set(committed) <= stored
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def pg_store(postgres_url):
    store = FeedbackStore(postgres_url)
    with store.engine.begin() as conn:
        for table in ("leases", "labels_taken_back", "labels", "queries", "segments"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return store


def test_the_same_code_on_postgresql(pg_store, segments, tmp_path):
    store = pg_store
    store.add_segments(segments, run="pg")
    a, b = segments[0].id, segments[1].id
    _same(store.get_segment(a).obs, segments[0].obs)
    q = store.add_query("preference", [a, b], run="pg")
    assert store.lease_query("human:ada").id == q
    store.answer_query(q, "human:ada", value="a")
    with pytest.raises(QueryStateError):
        store.answer_query(q, "human:ada", value="b")
    store.add_correction([0.0], [1.0], 0, "human:ada")
    exported = store.export_jsonl(tmp_path / "pg.jsonl")
    local = FeedbackStore(tmp_path / "from-pg.db")
    local.import_jsonl(exported)
    assert local.export_jsonl(tmp_path / "again.jsonl").read_bytes() == exported.read_bytes()
    assert store.engine.dialect.name == "postgresql"


def test_run_status_merges_fields(store):
    store.set_run_status("r", env="panda:PandaReach-v3", steps=0)
    status = store.set_run_status("r", steps=500, eval={"success_rate": 0.2})
    assert status == {"env": "panda:PandaReach-v3", "steps": 500, "eval": {"success_rate": 0.2}}
    assert store.run_statuses()["r"]["steps"] == 500
    with pytest.raises(StoreError, match="JSON"):
        store.set_run_status("r", model=object())
    assert store.run_statuses()["r"]["steps"] == 500


def test_undo_reopens_the_query_for_its_annotator(store, segments):
    q = store.add_query("preference", [segments[0].id, segments[1].id], run="r")
    store.answer_query(q, "human:ada", value="a")
    assert store.undo_last("human:bob") is None
    undone = store.undo_last("human:ada")
    assert undone.query_id == q and store.labels() == []
    assert store.get_query(q).status == "pending" and list(store.get_query(q).leases) == ["human:ada"]
    assert store.lease_query("human:bob") is None  # held for ada, who is shown it again
    store.add_ranking([s.id for s in segments[:3]], "human:ada", best=segments[0].id, worst=segments[2].id)
    with pytest.raises(StoreError, match="only a preference"):
        store.undo_last("human:ada")


def test_redundant_queries_close_after_enough_different_sources(store, segments):
    q = store.add_query("preference", [segments[0].id, segments[1].id], run="r")
    assert store.lease_query("human:ada", redundancy=2).id == q
    assert store.lease_query("human:bob", redundancy=2).id == q
    store.answer_query(q, "human:ada", value="a", redundancy=2)
    assert store.lease_query("human:ada", redundancy=2) is None  # ada has labelled it
    with pytest.raises(QueryStateError, match="already labelled"):
        store.answer_query(q, "human:ada", value="b", redundancy=2)
    store.answer_query(q, "human:bob", value="b", redundancy=2)
    assert store.get_query(q).status == "answered" and len(store.labels()) == 2
    with pytest.raises(StoreError, match="redundancy"):
        store.lease_query("human:ada", redundancy=0)


def test_segment_factors_and_closing_a_request(store, segments):
    assert store.segment_factors() == {"panda:PandaPush-v3": list(segments[0].factors)}
    q = store.add_query("factor_ranking", [], run="r", meta={"task": "metaworld:reach", "factors": ["a", "b"]})
    store.close_query(q)
    assert store.get_query(q).status == "answered"


def test_opening_a_new_database_from_several_threads_at_once(tmp_path):
    """The app and a trainer started together both create the schema; neither may fail."""
    import threading

    for trial in range(5):
        path = tmp_path / f"fresh{trial}.db"
        start = threading.Barrier(6)
        errors = []

        def open_store(path=path, start=start, errors=errors):
            start.wait()
            try:
                FeedbackStore(path).close()
            except Exception as error:  # the assertion below reports it
                errors.append(error)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert {"segments", "queries", "labels", "runs"} <= set(
            sa.inspect(FeedbackStore(path).engine).get_table_names()
        )


# -- the store's own rules: leases, redundancy, stable ids, validation, damage and migration --------------------


def test_a_query_one_annotator_holds_cannot_be_answered_by_another(store, segments):
    q = store.add_query("preference", [segments[0].id, segments[1].id], run="r")
    assert store.lease_query("human:alice").id == q
    with pytest.raises(QueryStateError, match="held by human:alice"):
        store.answer_query(q, "human:bob", value="b")
    with pytest.raises(QueryStateError, match="held by human:alice"):
        store.answer_query(q, "script:oracle", value="b")  # a scripted teacher answers only what nobody holds
    assert store.labels() == [] and store.get_query(q).status == "pending"
    store.answer_query(q, "human:alice", value="a")
    assert store.get_query(q).leases == {}
    free = store.add_query("preference", [segments[2].id, segments[3].id], run="r")
    store.answer_query(free, "script:oracle", value="a")  # nobody holds it: answered without a lease
    lapsed = store.add_query("preference", [segments[4].id, segments[5].id], run="r")
    assert store.lease_query("human:alice", lease_seconds=-1).id == lapsed  # a lease that has run out
    store.answer_query(lapsed, "human:bob", value="b")
    assert [(lb.query_id, lb.source) for lb in store.labels()] == [
        (q, "human:alice"),
        (free, "script:oracle"),
        (lapsed, "human:bob"),
    ]


def test_redundant_queries_have_as_many_places_as_labels_wanted(store, segments):
    q = store.add_query("preference", [segments[0].id, segments[1].id], run="r")
    assert store.lease_query("human:ada", redundancy=2).id == q
    assert store.lease_query("human:bob", redundancy=2).id == q
    assert store.lease_query("human:carl", redundancy=2) is None  # two places, both held
    with pytest.raises(QueryStateError, match="held by human:ada, human:bob"):
        store.answer_query(q, "human:carl", value="a", redundancy=2)
    store.answer_query(q, "human:ada", value="a", redundancy=2)
    assert store.lease_query("human:carl", redundancy=2) is None  # one label and bob's lease
    store.release_query(q, "human:bob")
    assert store.lease_query("human:carl", redundancy=2).id == q
    store.answer_query(q, "human:carl", value="b", redundancy=2)
    assert store.get_query(q).status == "answered" and store.get_query(q).leases == {}


def test_one_annotator_holds_at_most_max_held_queries(store, segments):
    ids = [s.id for s in segments]
    queries = [store.add_query("preference", ids[:2], run=f"run{i}") for i in range(8)]
    held = [store.lease_query("human:ada", run=f"run{i}") for i in range(6)]
    assert [q.id for q in held[:4]] == queries[:4] and held[4:] == [None, None]
    assert store.lease_query("human:ada", run="run1").id == queries[1]  # the one held, renewed
    assert store.lease_query("human:bob", run="run4").id == queries[4]  # others are served
    store.answer_query(queries[0], "human:ada", value="a")
    assert store.lease_query("human:ada", run="run5").id == queries[5]
    assert store.lease_query("human:eve", max_held=1, run="run6").id == queries[6]
    assert store.lease_query("human:eve", max_held=1, run="run7") is None
    with pytest.raises(StoreError, match="max_held"):
        store.lease_query("human:eve", max_held=0)


def test_label_ids_are_never_reused_and_undo_leaves_a_record(store, segments, tmp_path):
    a, b = segments[0].id, segments[1].id
    q = store.add_query("preference", [a, b], run="r")
    first = store.answer_query(q, "human:ada", value="a")
    before = time.time()
    undone = store.undo_last("human:ada")
    assert undone.id == first and store.labels() == []
    (record,) = store.taken_back()
    assert (record["id"], record["query_id"], record["value"]) == (first, q, "a")
    assert (record["taken_back_by"], record["reason"]) == ("human:ada", "undo")
    assert record["taken_back_at"] >= before
    again = store.answer_query(q, "human:ada", value="b")  # an undone query can be answered again
    assert again > first
    store.undo_last("human:ada")
    reopened = FeedbackStore(tmp_path / "fb.db")  # the highest id taken back: SQLite without AUTOINCREMENT reuses it
    third = reopened.add_preference(a, b, "equal", "human:ada")
    assert third > again > first
    assert [r["id"] for r in reopened.taken_back(source="human:ada")] == [first, again]
    assert [lb.id for lb in reopened.labels()] == [third]


def _second_label(store, query_id, source, segment_ids):
    """Write a second label of ``source`` on the query behind the API's back: the database must refuse it."""
    row = {"run": "r", "kind": "preference", "query_id": query_id, "segment_ids": segment_ids, "value": "b"}
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(labels_table.insert().values(**row, payload={}, source=source, created_at=time.time()))


def test_two_standing_labels_of_one_source_on_one_query_are_impossible(store, segments):
    ids = [segments[0].id, segments[1].id]
    q = store.add_query("preference", ids, run="r")
    label = store.answer_query(q, "human:ada", value="a", redundancy=2)
    _second_label(store, q, "human:ada", ids)
    assert [lb.id for lb in store.labels()] == [label]


def test_replaced_factor_rankings_are_kept_for_the_audit(store):
    first = store.set_factor_ranking("panda:PandaPush-v3", ["object_to_target", "ctrl_cost"], source="human:ada")
    second = store.set_factor_ranking("panda:PandaPush-v3", ["ctrl_cost", "object_to_target"], source="human:ada")
    assert [lb.id for lb in store.labels()] == [second]
    (record,) = store.taken_back()
    assert (record["id"], record["reason"]) == (first, "replaced by a newer factor ranking")


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda s, a, b: s.add_preference(a, b, "a", "human:ada", note="x" * 10_001), "at most 10000"),
        (lambda s, a, b: s.add_preference(a, b, "a", "human:" + "a" * 95), "at most 100 characters"),
        (lambda s, a, b: s.add_preference(a, b, "a", "human:ada\n"), "source must look like"),
        (lambda s, a, b: s.add_preference(a, b, "a", "human:al\u200bice"), "source must look like"),
        (lambda s, a, b: s.add_preference(a, b, "a", "human:ada", run="r" * 201), "run name is 1 to 200"),
        (lambda s, a, b: s.add_preference(a, b, "a", "human:ada", run="r\n"), "run name"),
        (lambda s, a, b: s.add_correction([0.0, 0.0], [1.0] * 1025, 0, "human:ada"), "at most 1024"),
        (lambda s, a, b: s.add_correction([0.0, 0.0], [1.0] * 1000, 0, "human:ada"), "at most its state's 2"),
        (lambda s, a, b: s.add_query("preference", [a, b], run="", assignee="human:ada"), "run name"),
        (lambda s, a, b: s.add_query("preference", [a, b], assignee="bob"), "source must look like"),
        (lambda s, a, b: s.set_run_status("r" * 300, steps=1), "run name"),
    ],
)
def test_sizes_and_names_have_limits(store, segments, write, match):
    before = (store.counts(), store.run_statuses())
    with pytest.raises(StoreError, match=match):
        write(store, segments[0].id, segments[1].id)
    assert (store.counts(), store.run_statuses()) == before


def test_a_correction_has_the_direction_size_its_query_asks_for(store):
    keys = {"right": [1.0, 0.0], "up": [0.0, 1.0]}
    drone = store.add_query("correction", [], run="r", meta={"state": [0.0, 1.0, 0.5, 0.0], "t": 3, "keys": keys})
    plain = store.add_query("correction", [], run="r", meta={"state": [0.0, 1.0], "t": 0})
    with pytest.raises(StoreError, match="direction of 2 numbers"):
        store.answer_query(drone, "human:ada", state=[0.0, 1.0, 0.5, 0.0], t=3, direction=[1.0] * 1000)
    with pytest.raises(StoreError, match="direction of 2 numbers"):
        store.answer_query(plain, "human:ada", state=[0.0, 1.0], t=0, direction=[1.0, 0.0, 0.0])
    assert store.labels() == []
    store.answer_query(drone, "human:ada", state=[0.0, 1.0, 0.5, 0.0], t=3, direction=[0.0, 1.0])
    store.answer_query(plain, "human:ada", state=[0.0, 1.0], t=0, direction=[0.6, 0.8])
    assert [len(lb.payload["direction"]) for lb in store.labels()] == [2, 2]


def _export_lines(store, segments, tmp_path):
    a, b, c = (s.id for s in segments[:3])
    q = store.add_query("preference", [a, b], run="r")
    store.answer_query(q, "script:oracle", value="a")
    r = store.add_query("ranking", [a, b, c], run="r")
    store.answer_query(r, "human:ada", order=[c, a, b])
    store.add_correction([1.5, -2.0], [0.3, 0.4], 7, "human:ada", run="r")
    undone = store.add_query("preference", [b, c], run="r")
    store.answer_query(undone, "human:bob", value="b")
    store.undo_last("human:bob")
    store.set_run_status("r", steps=100)
    return [json.loads(line) for line in store.export_jsonl(tmp_path / "good.jsonl").read_text().splitlines()]


def _first(lines, table, **where):
    return next(i for i, r in enumerate(lines) if r["table"] == table and all(r[k] == v for k, v in where.items()))


BAD_ROWS = [  # which line, which field, what it becomes
    ("labels", {"kind": "preference"}, "value", "zzz"),
    ("labels", {"kind": "preference"}, "source", "nobody"),
    ("labels", {"kind": "preference"}, "kind", "bogus"),
    ("labels", {"kind": "preference"}, "segment_ids", ["missing-segment", "other"]),
    ("labels", {"kind": "preference"}, "note", "x" * 10_001),
    ("labels", {"kind": "preference"}, "run", "r\n"),
    ("labels", {"kind": "preference"}, "query_id", "no-such-query"),
    ("labels", {"kind": "ranking"}, "payload", {"order": ["only-one"], "best": None, "worst": None}),
    ("labels", {"kind": "correction"}, "payload", {"state": [0.0], "direction": [0.0], "t": 1}),
    ("labels", {"kind": "correction"}, "id", "seven"),
    ("labels_taken_back", {"source": "human:bob"}, "taken_back_by", "bob\n"),
    ("queries", {"kind": "preference"}, "status", "hacked"),
    ("queries", {"kind": "preference"}, "kind", "bogus"),
    ("queries", {"kind": "ranking"}, "segment_ids", ["a-single-one"]),
    ("queries", {"kind": "preference"}, "assignee", "anyone"),
    ("segments", {}, "obs", {"base64": "bm90IGFuIGFycmF5"}),
    ("segments", {}, "meta", None),
    ("runs", {}, "status", "done"),
]


@pytest.mark.parametrize(("table", "where", "field", "bad"), BAD_ROWS, ids=[f"{t}.{f}" for t, _, f, _ in BAD_ROWS])
def test_import_checks_every_row_and_writes_nothing_if_one_is_bad(store, segments, tmp_path, table, where, field, bad):
    lines = _export_lines(store, segments, tmp_path)
    index = _first(lines, table, **where)
    lines[index][field] = bad
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    target = FeedbackStore(tmp_path / "target.db")
    target.add_segment(segments[5], run="kept")
    before = target.counts()
    with pytest.raises(StoreError, match=rf"bad.jsonl:{index + 1}: {table} row, field {field}: "):
        target.import_jsonl(path)
    assert target.counts() == before and target.taken_back() == [] and target.run_statuses() == {}


def test_import_keeps_the_audit_trail_and_never_reuses_an_id(store, segments, tmp_path):
    lines = _export_lines(store, segments, tmp_path)
    target = FeedbackStore(tmp_path / "target.db")
    counts = target.import_jsonl(tmp_path / "good.jsonl")
    assert counts == {"segments": 6, "queries": 3, "labels": 3, "labels_taken_back": 1, "runs": 1}
    (record,) = target.taken_back()
    assert (record["source"], record["taken_back_by"], record["reason"]) == ("human:bob", "human:bob", "undo")
    highest = max(r["id"] for r in lines if r["table"] in ("labels", "labels_taken_back"))
    assert record["id"] == highest  # the undone label was the last written
    assert target.add_preference(segments[0].id, segments[1].id, "a", "human:ada") == highest + 1


def _store_file(tmp_path, segments):
    """A store with some pages of segments and labels, its WAL checkpointed into the file, and the file's bytes."""
    path = tmp_path / "whole.db"
    store = FeedbackStore(path)
    store.add_segments(segments, run="r")
    for i in range(40):
        store.add_preference(segments[0].id, segments[1].id, "a", "script:oracle", note=f"label {i} " * 20)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    return path.read_bytes(), page


def _zero_page(data, page, n):
    return data[: n * page] + bytes(page) + data[(n + 1) * page :]


def _flip(data, page, n, start, length):
    at = n * page + start
    return data[:at] + bytes(b ^ 0xFF for b in data[at : at + length]) + data[at + length :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d, p: _zero_page(d, p, 1),  # the first table's root page
        lambda d, p: _zero_page(d, p, len(d) // p - 1),  # the last page
        lambda d, p: _flip(d, p, 2, 0, 12),  # a page's b-tree header
        lambda d, p: _flip(d, p, 0, 0, 16),  # the file header
        lambda d, p: b"name,label\nalice,a\n" * 500,  # not a database at all
    ],
    ids=["zeroed-root", "zeroed-last", "flipped-header", "flipped-file-header", "csv"],
)
def test_a_damaged_or_foreign_file_is_refused_with_one_clear_error(tmp_path, segments, damage):
    data, page = _store_file(tmp_path, segments)
    path = tmp_path / "damaged.db"
    path.write_bytes(damage(data, page))
    with pytest.raises(DamagedStoreError) as refused:
        FeedbackStore(path)
    message = str(refused.value)
    assert str(path) in message and "backup" in message and "JSONL export" in message and "\n" not in message
    shown = refused.value.__cause__ or (None if refused.value.__suppress_context__ else refused.value.__context__)
    assert shown is None  # no raw SQLAlchemy or sqlite3 error chained to it
    assert path.read_bytes() == damage(data, page)  # refused, not written to


def test_a_database_of_another_program_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(DamagedStoreError, match="no feedback store"):
        FeedbackStore(path)
    assert sa.inspect(sa.create_engine(f"sqlite:///{path}")).get_table_names() == ["users"]


def test_a_store_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "newer.db"
    FeedbackStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DamagedStoreError, match="schema version '99'"):
        FeedbackStore(path)


def _npz(array):
    buffer = io.BytesIO()
    np.savez(buffer, v=np.asarray(array))
    return buffer.getvalue()


def _old_store(path):
    """A store as robofeedback wrote it before schema versions (tests/fixtures/store_schema_v1.sql), holding what the
    race of issue 28 made: one source's two labels on one query; and a query leased to ada."""
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parents[1] / "fixtures" / "store_schema_v1.sql").read_text())
    blob = _npz(np.zeros((3, 2)))
    for sid in ("s0", "s1"):
        conn.execute(
            "INSERT INTO segments VALUES (?, 'r', 'x', 0, 2, ?, ?, ?, NULL, NULL, NULL, NULL, '{}', 1.0)",
            (sid, blob, blob, _npz(np.zeros(2))),
        )
    far = time.time() + 3600
    queries = [("q1", "answered", None, None), ("q2", "pending", "human:ada", far), ("q3", "answered", None, None)]
    for qid, status, holder, until in queries:
        conn.execute(
            "INSERT INTO queries VALUES (?, 'r', 'preference', '[\"s0\", \"s1\"]', NULL, ?, ?, ?, '{}', 1.0, NULL)",
            (qid, status, holder, until),
        )
    labels = [(1, "q1", "script:w0", "a"), (2, "q1", "script:w0", "b"), (3, "q3", "script:w1", "a")]
    for lid, qid, source, value in labels:
        conn.execute(
            "INSERT INTO labels VALUES (?, 'r', 'preference', ?, '[\"s0\", \"s1\"]', ?, '{}', ?, NULL, 2.0)",
            (lid, qid, value, source),
        )
    conn.commit()
    conn.close()


def test_an_old_store_is_backed_up_and_migrated_with_its_duplicates_reported(tmp_path, caplog):
    path = tmp_path / "old.db"
    _old_store(path)
    with caplog.at_level("WARNING", logger="robofeedback.data.store"):
        store = FeedbackStore(path)
    report = store.migration
    assert (report.from_version, report.to_version, report.backup) == (1, 2, tmp_path / "old.db.schema-1-backup")
    assert report.duplicates == [{"query_id": "q1", "source": "script:w0", "kept": 1, "taken_back": [2]}]
    assert "q1: script:w0 had 2 labels; kept 1, took back [2]" in caplog.text
    with sqlite3.connect(report.backup) as old:  # the backup is the store as it was
        assert old.execute("SELECT id FROM labels ORDER BY id").fetchall() == [(1,), (2,), (3,)]
        assert "store_meta" not in {r[0] for r in old.execute("SELECT name FROM sqlite_master")}
    assert [(lb.id, lb.query_id, lb.value) for lb in store.labels()] == [(1, "q1", "a"), (3, "q3", "a")]
    (record,) = store.taken_back()
    assert (record["id"], record["value"], record["taken_back_by"]) == (2, "b", None)
    assert "migrating" in record["reason"]
    assert list(store.get_query("q2").leases) == ["human:ada"]
    with pytest.raises(QueryStateError, match="held by human:ada"):
        store.answer_query("q2", "human:bob", value="a")
    store.undo_last("script:w1")
    assert store.add_preference("s0", "s1", "a", "human:ada") == 4  # id 3, taken back, is not reused
    assert store.check()["schema_version"] == 2
    store.close()
    again = FeedbackStore(path)
    assert again.migration is None and len(again.labels()) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["old.db.schema-1-backup"]


def test_store_commands(tmp_path, segments, capsys):
    from robofeedback.cli import main

    path = tmp_path / "lab.db"
    store = FeedbackStore(path)
    store.add_segments(segments[:2], run="r")
    store.add_preference(segments[0].id, segments[1].id, "a", "human:ada", run="r")
    assert main(["store", "--store", str(path), "check"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["integrity"] == "ok" and checked["labels.preference"] == 1 and checked["schema_version"] == 2
    assert main(["store", "--store", str(path), "backup", str(tmp_path / "copy.db")]) == 0
    assert FeedbackStore(tmp_path / "copy.db").labels()[0].source == "human:ada"
    assert main(["store", "--store", str(path), "backup", str(tmp_path / "copy.db")]) == 2  # never overwrites
    assert "exists already" in capsys.readouterr().err
    assert main(["store", "--store", str(path), "export", str(tmp_path / "lab.jsonl")]) == 0
    assert main(["store", "--store", str(tmp_path / "new.db"), "import", str(tmp_path / "lab.jsonl")]) == 0
    assert (tmp_path / "new.db").exists() and len(FeedbackStore(tmp_path / "new.db").labels()) == 1
    capsys.readouterr()
    (tmp_path / "junk.db").write_bytes(b"\x00" * 8192)
    assert main(["store", "--store", str(tmp_path / "junk.db"), "check"]) == 2
    assert main(["store", "--store", str(tmp_path / "absent.db"), "check"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "is damaged or not a feedback store" in errors[0] and "no feedback store" in errors[1]
    assert not (tmp_path / "absent.db").exists()


def test_postgresql_keeps_one_label_per_source_and_never_reuses_an_id(pg_store, segments):
    store = pg_store
    store.add_segments(segments[:2], run="pg")
    a, b = segments[0].id, segments[1].id
    q = store.add_query("preference", [a, b], run="pg")
    assert store.lease_query("human:alice").id == q
    with pytest.raises(QueryStateError, match="held by human:alice"):
        store.answer_query(q, "human:bob", value="a")
    first = store.answer_query(q, "human:alice", value="a")
    store.undo_last("human:alice")
    again = store.answer_query(q, "human:alice", value="b")
    assert again > first and [r["id"] for r in store.taken_back()] == [first]
    _second_label(store, q, "human:alice", [a, b])
    assert [lb.id for lb in store.labels()] == [again]
