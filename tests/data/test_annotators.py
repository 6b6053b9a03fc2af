"""Registered annotators: names normalised and look-alikes refused, secrets kept hashed and revocable."""

import pytest

from robofeedback.data.annotators import AnnotatorRegistry, normalize_name
from robofeedback.data.store import FeedbackStore, StoreError


@pytest.fixture
def store(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    yield store
    store.close()


def test_names_are_normalised_and_look_alikes_refused(store):
    assert normalize_name("  Ada  Lovelace ") == "Ada-Lovelace"
    assert normalize_name("ａｌｉｃｅ") == "alice" == normalize_name("alice\n")  # NFKC, trimmed
    for bad in ("alice\u200b", "al\u0456ce", "ali\x00ce", "a" * 65, "script:oracle", "", "-alice"):
        with pytest.raises(StoreError):
            normalize_name(bad)
    registry = AnnotatorRegistry(store)
    registry.add("alice")
    for lookalike in ("Alice", "al1ce", "a.lice", "ALICE_"):
        with pytest.raises(StoreError, match="looks like 'human:alice'"):
            registry.add(lookalike)
    with pytest.raises(StoreError, match="already registered"):
        registry.add("alice")
    with pytest.raises(StoreError, match="program"):
        registry.add("human:x", program=True)


def test_secrets_are_kept_hashed_and_revocable(store):
    registry = AnnotatorRegistry(store)
    source, secret = registry.add("alice")
    assert source == "human:alice" and registry.authenticate(secret) == "human:alice"
    assert (
        registry.authenticate(secret, name="alice") == "human:alice"
        and registry.authenticate(secret, name="bob") is None
    )
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM annotators").fetchall()
    assert secret not in repr(stored)  # only the hash is kept
    _, fresh = registry.add("alice", replace=True)
    assert registry.authenticate(secret) is None and registry.authenticate(fresh) == "human:alice"
    registry.revoke("alice")
    assert registry.authenticate(fresh) is None and registry.humans() == []
    with pytest.raises(StoreError, match="not a registered annotator"):
        registry.revoke("alice")
