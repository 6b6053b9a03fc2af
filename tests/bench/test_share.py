import json

from robofeedback.bench import share
from robofeedback.data.store import FeedbackStore


def test_share_bench_measures_export_and_import_of_a_store_with_clips(tmp_path, capsys):
    out = tmp_path / "share"
    assert (
        share.main(
            ["--labels", "12", "--episodes", "2", "--render-size", "32", "--image-size", "16", "--out", str(out)]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["store"]["labels.preference"] == 12 and results["clips"]["segments"] == 12  # 2 x 6 segments
    assert results["export_video"]["rows"] == {"labels": 12, "segments": 12, "queries": 12, "runs": 0}
    assert results["import_video"]["added"]["labels"] == 12
    assert results["export_images"]["bytes"] > 0
    assert FeedbackStore(out / "other" / "feedback.db").counts()["labels.preference"] == 12
    assert json.loads(capsys.readouterr().out)["export_video"]["s"] >= 0
