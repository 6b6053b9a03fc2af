"""``robofeedback annotators``: issue, list and revoke the app's annotators."""

from robofeedback.cli import main
from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore


def test_the_annotators_command_issues_lists_and_revokes(tmp_path, capsys):
    path = str(tmp_path / "feedback.db")
    assert main(["annotators", "--store", path, "add", "alice"]) == 0
    secret = capsys.readouterr().out.split("secret ")[1].split()[0]
    assert AnnotatorRegistry(FeedbackStore(path)).authenticate(secret) == "human:alice"
    assert main(["annotators", "--store", path, "add", "script:oracle", "--program"]) == 0
    capsys.readouterr()
    assert main(["annotators", "--store", path, "list"]) == 0
    listed = capsys.readouterr().out
    assert "human:alice\tlive" in listed and "script:oracle\tlive" in listed and secret not in listed
    assert main(["annotators", "--store", path, "revoke", "alice"]) == 0
    assert AnnotatorRegistry(FeedbackStore(path)).authenticate(secret) is None
