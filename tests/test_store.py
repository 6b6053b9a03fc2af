import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import sqlalchemy as sa

from robofeedback.data import collect
from robofeedback.data.store import FeedbackStore, QueryStateError, StoreError, UnknownSegmentError
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
    assert other.import_jsonl(first) == {"segments": 6, "queries": 1, "labels": 6, "runs": 1}
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


def test_the_same_code_on_postgresql(postgres_url, segments, tmp_path):
    store = FeedbackStore(postgres_url)
    with store.engine.begin() as conn:
        for table in ("labels", "queries", "segments"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
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
    assert store.get_query(q).status == "pending" and store.get_query(q).leased_to == "human:ada"
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
