"""The annotation app under load: eight logged-in annotators answer at once over real HTTP to a local app on a real
SQLite file, at redundancy 1 and 2, and the store holds exactly what the app told each of them (figures with 20
annotators: ``python -m robofeedback.bench.app_load``)."""

import pytest

from robofeedback.bench.app_load import run_load

ANNOTATORS = 8
QUERIES = 40


@pytest.mark.parametrize("redundancy", [1, 2])
def test_annotators_at_once_lose_and_double_nothing(redundancy):
    found = run_load(ANNOTATORS, QUERIES, redundancy)
    assert found["errors"] == []
    assert found["queries"] == QUERIES and found["labels"] == found["answers_returned"] > 0
    assert found["lost"] == found["duplicates"] == found["over_redundancy"] == 0
    assert found["short_of_redundancy"] == 0  # every query answered to its redundancy, or closed by a "can't tell"
    # every label's source is the login that answered it: no label that no client was told it gave, as itself
    assert found["unacknowledged"] == found["sources_not_registered"] == 0
    # the only refusal: a query closed by another annotator's "can't tell" while this one held it (redundancy 2)
    assert set(found["refused_reasons"]) <= {"query <id> is already skipped; it takes no more labels"}
    assert found["answer_calls"] == found["answers_returned"] + found["refused"]
