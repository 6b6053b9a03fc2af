"""Who labels through the app: registered annotators and their secrets, open mode for a person alone, programs'
credentials, names that cannot pass for others, over real HTTP to a local app (and one login in headless Chromium)."""

import base64
import logging

import httpx
import pytest
from gradio_client import Client
from helpers import CHROMIUM, preference_queries
from playwright.sync_api import expect, sync_playwright

from robofeedback.apps.annotate import AppServer
from robofeedback.apps.auto import AutoAnnotator
from robofeedback.apps.service import is_loopback
from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore


@pytest.fixture
def store(tmp_path, clips):
    store = FeedbackStore(tmp_path / "feedback.db")
    segments, videos = clips
    store.add_segments(segments, run="r", video_paths=videos)
    yield store
    store.close()


def basic(name, secret):
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()


def test_an_open_app_records_typed_names_unauthenticated_and_never_a_program(store, clips):
    first, second, third = preference_queries(store, clips, 3)
    with AppServer(store, port=0) as app:
        assert app.service.open and app.access.startswith("open")
        client = Client(app.url, verbose=False)
        assert client.predict("ivy", api_name="/next_preference")[0]["id"] == first
        client.predict("ivy", first, "", api_name="/answer_preference_a")
        (label,) = store.labels()
        assert label.source == "human:ivy" and label.payload["authenticated"] is False
        for claimed, message in (
            ("script:oracle", "letters, digits"),
            ("ivy\u200b", "letters, digits"),
            ("IVY", "looks like 'human:ivy'"),
        ):
            with pytest.raises(Exception, match=message):
                client.predict(claimed, api_name="/next_preference")
        # a program with the store's credential labels as itself, through the same endpoints
        assert AutoAnnotator(app.url, store, "oracle").answer_pending() == 1  # ivy holds the second query
        assert [(lb.source, lb.query_id) for lb in store.labels()] == [("human:ivy", first), ("script:oracle", third)]
        assert "authenticated" not in store.labels()[1].payload
        assert httpx.get(f"{app.url}/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert second in {q.id for q in store.queries(status="pending")}


def test_once_a_person_is_registered_every_request_needs_a_login(store, clips):
    queries = preference_queries(store, clips, 3)
    registry = AnnotatorRegistry(store)
    _, alice = registry.add("alice")
    _, bob = registry.add("bob")
    with AppServer(store, port=0) as app:
        assert not app.service.open and app.access.startswith("login")
        for path in ("/", "/gradio_api/info", f"/media/segment/{clips[0][0].id}"):
            response = httpx.get(app.url + path)
            assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{app.url}/health").status_code == 200
        assert httpx.get(f"{app.url}/", headers={"Authorization": basic("alice", bob)}).status_code == 401
        as_alice = Client(app.url, verbose=False, headers={"Authorization": basic("alice", alice)})
        query = as_alice.predict("bob", api_name="/next_preference")[0]  # the typed name is ignored
        assert query["id"] == queries[0] and query["progress"]["source"] == "human:alice"
        as_alice.predict("bob", query["id"], "", api_name="/answer_preference_b")
        (label,) = store.labels()
        assert label.source == "human:alice" and "authenticated" not in label.payload
        as_bob = Client(app.url, verbose=False, headers={"Authorization": basic("bob", bob)})
        with pytest.raises(Exception, match="nothing to undo"):
            as_bob.predict("alice", api_name="/undo")  # bob cannot take back alice's label
        assert len(store.labels()) == 1
        registry.revoke("bob")
        assert httpx.get(f"{app.url}/", headers={"Authorization": basic("bob", bob)}).status_code == 401


def test_an_app_other_machines_can_reach_needs_registered_annotators(store):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(RuntimeError, match="no annotator registered"):
        AppServer(store, host="0.0.0.0", port=0).start()
    AnnotatorRegistry(store).add("alice")
    with AppServer(store, host="0.0.0.0", port=0) as app:
        assert not app.service.open
        assert httpx.get(f"http://127.0.0.1:{app.port}/").status_code == 401


def test_rank_factors_and_ranking_positions_through_the_api(store, clips):
    task = "bullet:AntBulletEnv-v0"
    store.add_query("factor_ranking", [], run="r", meta={"task": task, "factors": ["progress", "alive"]})
    segments, _ = clips
    ranking = store.add_query("ranking", [s.id for s in segments[:3]], run="r")
    with AppServer(store, port=0) as app:
        client = Client(app.url, verbose=False)
        saved = client.predict("ivy", task, "alive, progress", [], "", api_name="/rank_factors")
        assert saved == f"Saved: alive > progress for {task}, as human:ivy."
        assert store.factor_ranking(task).payload["order"] == ["alive", "progress"]
        assert client.predict("ivy", api_name="/next_ranking")[0]["id"] == ranking
        with pytest.raises(Exception, match="video number"):
            client.predict("ivy", ranking, 1.9, 3, "", "", api_name="/answer_ranking")
        assert store.labels(kind="ranking") == []


def test_a_refused_request_logs_one_line(store, caplog, capfd):
    with AppServer(store, port=0) as app, caplog.at_level(logging.INFO):
        client = Client(app.url, verbose=False)
        with pytest.raises(Exception, match="unknown query id"):
            client.predict("ivy", "no-such-query", "", api_name="/answer_preference_a")
    refused = [r for r in caplog.records if "unknown query id" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None and refused[0].levelno == logging.INFO
    assert "Traceback" not in capfd.readouterr().err


def test_a_person_logs_in_in_the_browser(store, clips):
    (query,) = preference_queries(store, clips, 1)
    _, secret = AnnotatorRegistry(store).add("alice")
    with AppServer(store, port=0) as app, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):  # no login: no page
            browser.new_context().new_page().goto(app.url)
        page = browser.new_context(http_credentials={"username": "alice", "password": secret}).new_page()
        page.goto(app.url)
        expect(page.locator("#who")).to_contain_text("human:alice", timeout=20_000)  # logged in, then labelling
        expect(page.locator("#annotator-name input, #annotator-name textarea").first).to_be_disabled()
        page.click("#start")
        expect(page.locator(f'#pref-videos video[src*="q={query}"]')).to_have_count(2, timeout=20_000)
        page.click("#pref-a")
        expect(page.locator("#who")).to_contain_text("No preference queries waiting", timeout=20_000)
        browser.close()
    (label,) = store.labels()
    assert label.source == "human:alice" and label.value == "a"
