"""Feedback stores as Hugging Face datasets: export, load with ``datasets`` alone, import back with nothing lost."""

import json
import shutil
import subprocess
import sys

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robofeedback.data import collect, write_video
from robofeedback.data.dataset import DatasetError, export_dataset, import_dataset, read_dataset
from robofeedback.data.store import FeedbackStore, StoreError, _unpack
from robofeedback.envs import make


@pytest.fixture(scope="module")
def segments():
    env = make("panda:PandaPush-v3", seed=0, render_size=(48, 32))  # dict observations, frames to make clips of
    trajectories = collect(env, None, n_episodes=2, render=True, seed=0)
    env.close()
    return [t.segment(s, s + 10) for t in trajectories for s in (0, 20, 40)]


@pytest.fixture
def store(tmp_path, segments):
    """A store with every label kind, a label taken back, a pending query, a run status and clips."""
    store = FeedbackStore(tmp_path / "lab" / "fb.db")
    videos = [
        str(write_video(s.frames, tmp_path / "lab" / "clips" / f"{i}.mp4", fps=10)) for i, s in enumerate(segments)
    ]
    store.add_segments(segments, run="r", video_paths=videos, meta=[{"task": "push the cube"}] * len(segments))
    a, b, c, d = (s.id for s in segments[:4])
    q = store.add_query("preference", [a, b], run="r", meta={"shown": [1, 2.5]})
    store.answer_query(q, "human:ada", value="a", note="closer", redundancy=2)
    store.answer_query(q, "vlm:clip-mini", value="b", redundancy=2, prompt="the cube is at the target")
    store.add_query("preference", [c, d], run="r")  # pending
    store.add_preference(b, c, "b", "script:heron", run="r", note="decided at level 2 (alive)", level=2)
    store.add_preference(c, d, "a", "human:bob", run="r")
    store.undo_last("human:bob", run="r")
    store.add_preference(c, d, "b", "human:bob", run="r")
    store.add_ranking([a, b, c], "human:ada", best=a, worst=c, run="r")
    store.add_correction([1.5, -2.0], [0.3, 0.4], 7, "human:ada", segment_id=a, run="r")
    store.add_violation([0.5, 0.25], 8, "human:ada", run="r", cut={"h": [-0.5, -1.0], "b": -1.0})
    store.set_factor_ranking("metaworld:reach", ["obj_to_target"], "human:ada", run="r")
    store.set_run_status("r", steps=100, agreement={"human:ada": 0.75}, api_token="s3cret", task="push it")
    return store


def _same(a, b):
    """The same arrays with the same dtypes (and, for dicts, the same keys in the same order)."""
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def _rows(store):
    return {name: store.table_rows(name) for name in ("segments", "queries", "labels", "labels_taken_back", "runs")}


def test_every_row_comes_back_namespaced(store, segments, tmp_path):
    report = export_dataset(store, tmp_path / "lab-a", license="cc-by-4.0")
    assert report.rows == {"labels": 9, "segments": 6, "queries": 2, "runs": 1} and report.clips == 6
    other = FeedbackStore(tmp_path / "other" / "fb.db")
    added = import_dataset(other, tmp_path / "lab-a")
    assert added == {"segments": 6, "queries": 2, "labels": 8, "labels_taken_back": 1, "runs": 1}
    before, after = _rows(store), _rows(other)

    def ident(value):
        return f"lab-a/{value}"

    def who(source):
        return f"{source}@lab-a" if source and source.startswith("human:") else source

    for old, new in zip(before["segments"], sorted(after["segments"], key=lambda r: r["id"][6:]), strict=True):
        assert new["id"] == ident(old["id"]) and new["run"] == "lab-a/r"
        for key in ("obs", "actions", "env_rewards", "agent_path", "factors"):
            _same(_unpack(new[key]), _unpack(old[key]))
        assert (new["env_spec"], new["start_step"], new["end_step"], new["meta"]) == (
            old["env_spec"],
            old["start_step"],
            old["end_step"],
            old["meta"],
        )
        assert open(new["video_path"], "rb").read() == open(old["video_path"], "rb").read()
    old_queries = {ident(q["id"]): q for q in before["queries"]}
    for new in after["queries"]:
        old = old_queries[new["id"]]
        assert new["segment_ids"] == [ident(s) for s in old["segment_ids"]]
        assert (new["kind"], new["status"], new["meta"], new["created_at"]) == (
            old["kind"],
            old["status"],
            old["meta"],
            old["created_at"],
        )
    for table in ("labels", "labels_taken_back"):
        olds = sorted(before[table], key=lambda r: r["created_at"])
        news = sorted(after[table], key=lambda r: r["created_at"])
        for old, new in zip(olds, news, strict=True):
            assert new["source"] == who(old["source"]) and new["segment_ids"] == [ident(s) for s in old["segment_ids"]]
            assert new["query_id"] == (old["query_id"] and ident(old["query_id"]))
            for key in ("kind", "value", "note", "created_at"):
                assert new[key] == old[key], key
            payload = dict(old["payload"])
            if old["kind"] == "ranking":
                payload.update(order=None, best=ident(payload["best"]), worst=ident(payload["worst"]))
            assert new["payload"] == payload
    assert after["labels_taken_back"][0]["taken_back_by"] == "human:bob@lab-a"
    status = after["runs"][0]["status"]
    assert status == {
        "steps": 100,
        "agreement": {"human:ada@lab-a": 0.75},
        "task": "push it",
    }  # the token stayed in the store
    assert other.add_preference(ident(segments[0].id), ident(segments[1].id), "a", "human:cy") > max(
        r["id"] for r in after["labels"] + after["labels_taken_back"]
    )


def test_datasets_loads_it_without_robofeedback(store, tmp_path):
    export_dataset(store, tmp_path / "ds", pseudonymise=True)
    labels = datasets.load_dataset(
        "parquet", data_files={"train": str(tmp_path / "ds/labels/*.parquet")}, cache_dir=str(tmp_path / "cache")
    )["train"]
    assert sorted(set(labels["source"])) == ["human:annotator-1", "human:annotator-2", "script:heron", "vlm:clip-mini"]
    vlm = labels.filter(lambda row: row["source_kind"] == "vlm")[0]
    assert (vlm["annotator"], vlm["prompt"]) == ("clip-mini", "the cube is at the target")
    segments = datasets.load_dataset(str(tmp_path / "ds"), "segments", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(segments) == 6 and np.asarray(segments[0]["obs"]).shape == (11, 24)  # 3 + 3 + 18 numbers, sorted keys
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "human:ada" not in card and "human:annotator-1" in card
    assert "`panda:PandaPush-v3`: to push the cube" in card and "as the annotators were told: push it" in card
    assert "vlm:clip-mini / human:annotator-1" in card or "human:annotator-1 / vlm:clip-mini" in card
    data = read_dataset(tmp_path / "ds")
    assert json.loads(data.rows["runs"][0]["status"])["agreement"] == {"human:annotator-1": 0.75}
    assert "ada" not in json.dumps(data.rows) and "bob" not in json.dumps(data.rows)


BLOCKED = """
import sys
sys.modules["robofeedback"] = None  # any import of robofeedback fails: the folder must open without it
import datasets
folder = sys.argv[1]
labels = datasets.load_dataset("parquet", data_files={"train": folder + "/labels/*.parquet"}, cache_dir=sys.argv[2])
segments = datasets.load_dataset(folder, "segments", split="train", cache_dir=sys.argv[2])
print(len(labels["train"]), len(segments), segments[0]["video"])
"""


def test_the_folder_opens_where_robofeedback_cannot_be_imported(store, tmp_path):
    export_dataset(store, tmp_path / "ds")
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(tmp_path / "ds"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[:2] == ["9", "6"] and out[2].startswith("videos/") and (tmp_path / "ds" / out[2]).is_file()


def test_image_columns_decode_as_images_and_import_as_clips(store, segments, tmp_path):
    export_dataset(store, tmp_path / "img", frames="images", image_size=32)
    rows = datasets.load_dataset(str(tmp_path / "img"), "segments", split="train", cache_dir=str(tmp_path / "cache"))
    first = rows[0]["frames"]
    assert len(first) == 11 and first[0].size == (32, 32)
    other = FeedbackStore(tmp_path / "b" / "fb.db")
    import_dataset(other, tmp_path / "img", namespace="lab-b")
    stored = other.get_segment(f"lab-b/{segments[0].id}")
    assert stored.video_path.endswith(".mp4") and (tmp_path / "b" / "videos" / "lab-b").is_dir()


def test_source_filter_exports_what_those_labels_name(store, tmp_path):
    report = export_dataset(store, tmp_path / "people", sources=["human:*"], frames="none")
    data = read_dataset(tmp_path / "people")
    assert {r["source_kind"] for r in data.rows["labels"]} == {"human"} and report.rows["labels"] == 7
    named = {s for r in data.rows["labels"] + data.rows["queries"] for s in r["segment_ids"]}
    assert {r["id"] for r in data.rows["segments"]} == named


def _exported(store, tmp_path):
    export_dataset(store, tmp_path / "ds")
    return tmp_path / "ds"


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda d: (d / "robofeedback_dataset.json").write_text(
                json.dumps({**json.loads((d / "robofeedback_dataset.json").read_text()), "schema_version": 9})
            ),
            "schema version 9.*upgrade",
        ),
        (lambda d: next((d / "videos").iterdir()).unlink(), "clips the segments name are missing"),
        (
            lambda d: pq.write_table(pa.table({"text": ["hello"]}), d / "labels" / "train-00000-of-00001.parquet"),
            "not a robofeedback labels table",
        ),
        (lambda d: (d / "robofeedback_dataset.json").unlink(), "no robofeedback_dataset.json"),
    ],
    ids=["newer-schema", "missing-video", "foreign-parquet", "not-a-dataset"],
)
def test_bad_datasets_are_refused_and_nothing_is_imported(store, tmp_path, spoil, message):
    folder = _exported(store, tmp_path)
    spoil(folder)
    other = FeedbackStore(tmp_path / "o" / "fb.db")
    with pytest.raises(DatasetError, match=message):
        import_dataset(other, folder)
    assert other.counts() == {"segments": 0} and not (tmp_path / "o" / "videos").exists()


def test_a_bad_row_imports_nothing_and_leaves_no_clips(store, tmp_path):
    folder = _exported(store, tmp_path)
    path = next((folder / "labels").iterdir())
    table = pq.read_table(path)
    values = table.column("value").to_pylist()
    values[0] = "maybe"
    pq.write_table(table.set_column(table.schema.get_field_index("value"), "value", pa.array(values)), path)
    other = FeedbackStore(tmp_path / "o" / "fb.db")
    with pytest.raises(StoreError, match="labels row 0.*value"):
        import_dataset(other, folder)
    assert other.counts() == {"segments": 0} and not any((tmp_path / "o" / "videos").glob("*/*"))


def test_clip_paths_cannot_leave_the_dataset(store, tmp_path):
    folder = _exported(store, tmp_path)
    path = next((folder / "segments").iterdir())
    table = pq.read_table(path)
    videos = ["../../fb.db"] + table.column("video").to_pylist()[1:]
    pq.write_table(table.set_column(table.schema.get_field_index("video"), "video", pa.array(videos)), path)
    with pytest.raises(DatasetError, match="not a file videos/"):
        read_dataset(folder)


def test_importing_twice_is_refused(store, tmp_path):
    folder = _exported(store, tmp_path)
    other = FeedbackStore(tmp_path / "o" / "fb.db")
    import_dataset(other, folder)
    counts = other.counts()
    with pytest.raises(FileExistsError, match="imported before"):
        import_dataset(other, folder)
    shutil.rmtree(tmp_path / "o" / "videos")
    with pytest.raises(StoreError, match="clash"):
        import_dataset(other, folder)
    assert other.counts() == counts


def test_a_failed_export_leaves_no_folder(store, tmp_path):
    first = store.table_rows("segments")[0]
    open(first["video_path"], "wb").write(b"not a video")
    with pytest.raises(Exception, match="video|ffmpeg|frames"):
        export_dataset(store, tmp_path / "half", frames="images")
    assert not (tmp_path / "half").exists()


def test_arrays_are_numbers_whatever_the_layout_claims(store, tmp_path):
    folder = _exported(store, tmp_path)
    path = next((folder / "segments").iterdir())
    table = pq.read_table(path)
    layouts = table.column("layout").to_pylist()
    layouts[0] = json.dumps({**json.loads(layouts[0]), "actions": {"dtype": "|O", "shape": [4]}})
    pq.write_table(table.set_column(table.schema.get_field_index("layout"), "layout", pa.array(layouts)), path)
    other = FeedbackStore(tmp_path / "o" / "fb.db")
    with pytest.raises(StoreError, match="segments row 0: arrays that do not fit their layout.*numeric"):
        import_dataset(other, folder)
    assert other.counts() == {"segments": 0}
