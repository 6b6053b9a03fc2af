"""The annotation app in a real browser (Playwright driving Debian's headless Chromium) and over real HTTP.

Screenshots of each tab go to test-artifacts/app/.
"""

import logging
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from helpers import CHROMIUM, TASK, preference_queries
from playwright.sync_api import expect, sync_playwright

from robofeedback.apps.annotate import AppServer
from robofeedback.apps.auto import AutoAnnotator
from robofeedback.apps.service import AnnotationError, AnnotationService, AppConfig
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "app"


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def store(tmp_path, clips):
    store = FeedbackStore(tmp_path / "feedback.db")
    segments, videos = clips
    store.add_segments(segments, run="r", video_paths=videos)
    store.set_run_status("r", env=TASK, task="to move the gripper's tip onto the green target", budget=20)
    yield store
    store.close()


def server_for(store, **config):
    return AppServer(store, port=0, config=AppConfig(**config)).start()


@pytest.fixture
def app(store):
    server = server_for(store)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def open_page(browser, url, name):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url)
    page.locator("#annotator-name input, #annotator-name textarea").first.fill(name)
    page.click("#start")
    expect(page.locator("#who")).to_contain_text(f"human:{name}", timeout=20_000)
    return page


def shown_query(store, annotator):
    held = [q for q in store.queries(status="pending") if annotator in q.leases]
    return held[0].id if held else None


def showing(page, query_id):
    """Wait until the page shows ``query_id``'s videos (their URLs name the query)."""
    expect(page.locator(f'#pref-videos video[src*="q={query_id}"]')).to_have_count(2, timeout=20_000)


def answer_and_wait(store, page, action, n_labels, next_query):
    action()
    wait_until(lambda: len(store.labels()) == n_labels)
    showing(page, next_query)


def test_annotator_labels_pairs_with_clicks_and_keys(store, clips, app, browser):
    queries = preference_queries(store, clips, 5)
    page = open_page(browser, app.url, "alice")
    videos = page.locator("#pref-videos video")
    expect(videos).to_have_count(2, timeout=20_000)
    expect(page.locator("#pref-task")).to_contain_text("green target")
    # Both videos play, loop and have the same size; the second follows the first.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#pref-videos video')].every(v => v.readyState >= 2 && !v.paused "
        "&& v.currentTime > 0 && v.loop)",
        timeout=20_000,
    )
    sizes = videos.evaluate_all("vs => vs.map(v => [v.clientWidth, v.clientHeight])")
    assert sizes[0] == sizes[1] and sizes[0][0] > 300
    times = videos.evaluate_all("vs => vs.map(v => v.currentTime)")
    assert abs(times[0] - times[1]) < 0.5
    assert page.locator("#pref-a").is_visible()  # the answer buttons are on screen at 1280x800
    page.screenshot(path=str(ARTIFACTS / "preferences.png"))

    page.locator("#pref-note textarea, #pref-note input").first.fill("left gets closer")
    showing(page, queries[0])
    answer_and_wait(store, page, lambda: page.click("#pref-a"), 1, queries[1])
    answer_and_wait(store, page, lambda: page.keyboard.press("2"), 2, queries[2])
    answer_and_wait(store, page, lambda: page.keyboard.press("3"), 3, queries[3])
    page.click("#pref-skip")
    wait_until(lambda: len(store.labels()) == 4)

    labels = store.labels(kind="preference")
    assert [lb.value for lb in labels] == ["a", "b", "equal", "skip"]
    assert {lb.source for lb in labels} == {"human:alice"}
    assert [lb.query_id for lb in labels] == queries[:4]
    assert labels[0].note == "left gets closer" and labels[1].note is None
    assert store.get_query(queries[3]).status == "skipped"
    expect(page.locator("#pref-progress")).to_contain_text("4 labels")


def test_undo_takes_back_the_last_label(store, clips, app, browser):
    queries = preference_queries(store, clips, 2)
    page = open_page(browser, app.url, "bob")
    showing(page, queries[0])
    answer_and_wait(store, page, lambda: page.keyboard.press("1"), 1, queries[1])
    page.click("#pref-undo")
    wait_until(lambda: len(store.labels()) == 0)
    expect(page.locator("#who")).to_contain_text("Took back")
    showing(page, queries[0])
    assert store.get_query(queries[0]).status == "pending"
    answer_and_wait(store, page, lambda: page.keyboard.press("2"), 1, queries[1])
    (label,) = store.labels()
    assert label.query_id == queries[0] and label.value == "b"


def test_ranking_tab(store, clips, app, browser):
    segments, _ = clips
    ids = [s.id for s in segments[:3]]
    query = store.add_query("ranking", ids, run="r")
    page = open_page(browser, app.url, "carol")
    page.get_by_role("tab", name="Rankings").click()
    expect(page.locator("#rank-videos video")).to_have_count(3, timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "rankings.png"))
    page.locator("#rank-best").get_by_label("2").check()
    page.locator("#rank-worst").get_by_label("3").check()
    page.click("#rank-submit")
    wait_until(lambda: store.get_query(query).status == "answered")
    (label,) = store.labels(kind="ranking")
    assert label.payload["best"] == ids[1] and label.payload["worst"] == ids[2]
    assert label.source == "human:carol"


def test_correction_tab_sends_a_direction_to_the_robot(tmp_path, store, app, browser):
    from robofeedback.methods.safe_mpc.alignment import StoreHuman
    from robofeedback.methods.safe_mpc.mpc import SafeMPC

    env = make("safety:drone", seed=0, render_size=224)
    game = env.game
    env.reset(seed=1)
    mpc = SafeMPC(game.model)
    x = np.asarray(game.state, dtype=np.float64)
    theta = np.zeros(game.model.features.r)
    plan = mpc.plan(x, theta, game.goal)
    game.plan = plan.x
    human = StoreHuman(store, run="r", wait_seconds=60, poll_seconds=0.1, frame_dir=tmp_path / "frames")
    human.attach(game)
    answers = []

    def robot_asks():
        answers.append(human.direction(mpc, x, game.goal, plan.u, env.render(), t=3))

    page = open_page(browser, app.url, "dan")
    page.get_by_role("tab", name="Corrections").click()
    for expected, act in (
        ([1.0, 0.0], lambda: page.keyboard.press("ArrowRight")),
        ([0.0, 1.0], lambda: page.click("#corr-up")),
    ):
        asking = threading.Thread(target=robot_asks)
        asking.start()
        expect(page.locator("#corr-image img")).to_be_visible(timeout=20_000)  # the timer finds the new query
        expect(page.locator("#corr-task")).to_contain_text("step 3")
        expect(page.locator("#corr-up")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "corrections.png"))
        act()
        asking.join(timeout=30)
        np.testing.assert_allclose(answers[-1], expected)
        expect(page.locator("#corr-task")).to_contain_text("No correction queries", timeout=20_000)
    labels = store.labels(kind="correction")
    assert len(labels) == 2 and {lb.source for lb in labels} == {"human:dan"}
    np.testing.assert_allclose(labels[0].payload["state"], x)
    assert labels[0].payload["t"] == 3
    env.close()


def test_factor_ranking_tab_feeds_heron(store, app, browser):
    from robofeedback.methods.heron.model import HierarchicalJudge

    page = open_page(browser, app.url, "erin")
    page.get_by_role("tab", name="Factor ranking").click()
    expect(page.locator("#factor-order input, #factor-order textarea").first).to_have_value(
        "ee_to_target, ctrl_cost, progress", timeout=20_000
    )
    page.locator("#factor-pick").get_by_label("progress").check()
    page.click("#factor-up")
    expect(page.locator("#factor-order input, #factor-order textarea").first).to_have_value(
        "ee_to_target, progress, ctrl_cost"
    )
    page.locator("#factor-costs").get_by_label("ctrl_cost").check()
    page.screenshot(path=str(ARTIFACTS / "factor-ranking.png"))
    page.click("#factor-save")
    expect(page.locator("#factor-message")).to_contain_text("Saved")
    label = store.factor_ranking(TASK, "human:erin")
    assert label.payload["order"] == ["ee_to_target", "progress", "ctrl_cost"]
    assert label.payload["signs"] == {"ee_to_target": 1, "progress": 1, "ctrl_cost": -1}
    judge = HierarchicalJudge.from_store(store, TASK)
    assert judge.order == ["ee_to_target", "progress", "ctrl_cost"]


def test_two_annotators_never_get_the_same_query(store, clips, app, browser):
    queries = preference_queries(store, clips, 6)
    pages = {name: open_page(browser, app.url, name) for name in ("fay", "gus")}
    for _ in range(3):
        # each answer leases the annotator's next query just after the label is written: wait for both leases
        wait_until(lambda: all(shown_query(store, f"human:{name}") for name in pages))
        held = {name: shown_query(store, f"human:{name}") for name in pages}
        assert held["fay"] != held["gus"]
        for name, page in pages.items():
            showing(page, held[name])
        n = len(store.labels())
        pages["fay"].keyboard.press("1")
        pages["gus"].keyboard.press("2")
        wait_until(lambda n=n: len(store.labels()) == n + 2)
    labels = store.labels()
    assert sorted(lb.query_id for lb in labels) == sorted(queries)
    assert {lb.source: lb.value for lb in labels} == {"human:fay": "a", "human:gus": "b"}
    assert sum(lb.source == "human:fay" for lb in labels) == 3


def test_training_tab_shows_the_runs(store, clips, app, browser):
    _, videos = clips
    store.set_run_status(
        "r",
        state="training",
        steps=2000,
        total_steps=6000,
        eval={"success_rate": 0.4, "mean_env_return": -3.2},
        eval_steps=2000,
        eval_video=videos[0],
        labels=40,
        agreement={"human:alice": 0.85},
        levels={"level 1 (progress)": 0.7, "tie at every level": 0.3},  # what a HERON run reports
        curve=[[1000, 0.1, -9.5, 10], [2000, 0.4, -3.2, 40]],
        agreement_curve=[{"labels": 10, "human:alice": 0.6}, {"labels": 40, "human:alice": 0.85, "human:bo": 0.7}],
    )
    page = open_page(browser, app.url, "hal")
    page.get_by_role("tab", name="Training").click()
    table = page.locator("#train-table")
    expect(table).to_contain_text("2000 / 6000", timeout=20_000)
    expect(table).to_contain_text("0.40")
    expect(table).to_contain_text("human:alice 85%")
    expect(table).to_contain_text("level 1 (progress) 0.70, tie at every level 0.30")
    expect(page.locator("#train-video video")).to_have_count(1)
    charts = page.locator("#train-charts svg")
    expect(charts).to_have_count(3)
    expect(charts.nth(0)).to_contain_text("success rate")
    expect(charts.nth(2)).to_contain_text("human:bo")
    assert charts.nth(0).locator("polyline").get_attribute("points").count(",") == 2  # one point per evaluation
    assert charts.nth(2).locator("polyline").count() == 2  # one line per annotator
    page.screenshot(path=str(ARTIFACTS / "training.png"))


def test_bad_requests_get_a_clear_message_and_change_nothing(store, clips, app):
    (query,) = preference_queries(store, clips, 1)
    client = Client(app.url, verbose=False)
    before = store.counts()
    for args, api, message in (
        (("ivy", "no-such-query", ""), "/answer_preference_a", "unknown query id"),
        (("", query, ""), "/answer_preference_a", "enter your name"),
        (("ivy", "", ""), "/answer_preference_b", "load the next one"),
        (("ivy", query, "2", "2", "", ""), "/answer_ranking", "preference value"),  # the wrong kind of answer
    ):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name=api)
        assert store.counts() == before
    # A malformed request (the wrong number of inputs) to the same endpoint.
    response = httpx.post(f"{app.url}/gradio_api/call/answer_preference_a", json={"data": ["ivy"]})
    if response.status_code == 200:
        event = response.json()["event_id"]
        body = httpx.get(f"{app.url}/gradio_api/call/answer_preference_a/{event}", timeout=30).text
        assert "error" in body
    else:
        assert response.status_code in (400, 422)
    assert store.counts() == before
    # A double submit: the second answer is refused and the first stands.
    client.predict("ivy", query, "", api_name="/answer_preference_a")
    with pytest.raises(Exception, match="already answered"):
        client.predict("ivy", query, "", api_name="/answer_preference_b")
    assert [lb.value for lb in store.labels()] == ["a"]
    assert httpx.get(f"{app.url}/media/segment/nope").status_code == 404
    assert httpx.get(f"{app.url}/media/segment/{clips[0][0].id}").status_code == 200


def test_a_lease_runs_out_and_the_query_returns_to_the_pool(store, clips):
    (query,) = preference_queries(store, clips, 1)
    service = AnnotationService(store, AppConfig(lease_seconds=0.5))
    assert service.next("jo", "preference")["id"] == query
    assert service.next("kim", "preference")["id"] is None  # held by jo
    time.sleep(0.6)  # jo left
    assert service.next("kim", "preference")["id"] == query
    service.answer("kim", query, value="a")
    with pytest.raises(AnnotationError, match="already answered"):
        service.answer("jo", query, value="b")


def test_redundancy_serves_a_query_to_two_people_and_reports_agreement(store, clips):
    (q1, q2) = preference_queries(store, clips, 2)
    service = AnnotationService(store, AppConfig(redundancy=2))
    assert service.next("lee", "preference")["id"] == q1
    assert service.next("max", "preference")["id"] == q1
    service.answer("lee", q1, value="a")
    assert store.get_query(q1).status == "pending"
    with pytest.raises(AnnotationError, match="already labelled"):
        service.answer("lee", q1, value="b")
    nxt = service.answer("max", q1, value="a")
    assert store.get_query(q1).status == "answered" and nxt["id"] == q2
    service.answer("lee", q2, value="a")
    service.answer("max", q2, value="b")
    assert service.annotator_agreement("r") == 0.5
    assert service.progress("human:lee", "r")["annotator_agreement"] == 0.5


def test_restarting_the_app_loses_nothing(store, clips):
    queries = preference_queries(store, clips, 2)
    with AppServer(store, port=0) as first:
        client = Client(first.url, verbose=False)
        shown, _, _ = client.predict("nia", api_name="/next_preference")
        client.predict("nia", shown["id"], "", api_name="/answer_preference_a")
    with AppServer(FeedbackStore(store.url), port=0) as second:
        client = Client(second.url, verbose=False)
        shown, _, _ = client.predict("nia", api_name="/next_preference")
        assert shown["id"] == queries[1]  # still held for nia
        assert shown["progress"]["labels"] == 1


def test_stopping_with_a_client_connected_reports_no_error(store):
    """A connected client holds a heartbeat stream open; stopping the app cancels it without an error report."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    server = AppServer(store, port=0).start()  # uvicorn sets up its loggers as it starts: listen after that
    logging.getLogger("uvicorn.error").addHandler(handler)
    client = Client(server.url, verbose=False)
    try:
        client.predict("nia", api_name="/next_preference")
        wait_until(lambda: client.heartbeat.is_alive(), timeout=10)
        server.stop()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
        client.close()
    assert [r.getMessage() for r in records] == []


@pytest.mark.slow
@pytest.mark.parametrize("first", ["trainer", "app"])
def test_live_training_learns_from_answers_given_over_http(tmp_path, tiny_train_config, first):
    """The trainer and the app start in either order (the trainer waits for answers, the app for queries); a
    scripted teacher answers over HTTP; the loop runs."""
    from robofeedback.feedback.sources import HumanQueue
    from robofeedback.rl.train import train

    store_path = tmp_path / "feedback.db"
    config = {
        **tiny_train_config,
        "her": None,
        "env_kwargs": {"terminate_on_success": False, "render_size": [64, 48]},
        "feedback": {"every": 200, "first_round": 200, "segment_length": 10, "labels_per_round": 4, "budget": 8},
    }
    results = []
    trainer = threading.Thread(
        target=lambda: results.append(
            train(
                "panda:PandaReachDense-v3",
                reward="preference",
                total_steps=450,
                out_dir=tmp_path / "run",
                config=config,
                progress=False,
                feedback=HumanQueue(wait_seconds=120, poll_seconds=0.2),
                store=store_path,
            )
        )
    )
    if first == "trainer":
        trainer.start()
        store = FeedbackStore(store_path)
        wait_until(lambda: store.counts().get("queries.pending", 0) == 4, timeout=180)
    with AppServer(store_path, port=0) as server:
        if first == "app":
            store = FeedbackStore(store_path)
            trainer.start()
        auto = AutoAnnotator(server.url, store_path, "oracle", poll_seconds=0.2).start()
        trainer.join(timeout=300)
        auto.stop()
    (result,) = results
    labels = store.labels(kind="preference")
    assert len(labels) == 8 and {lb.source for lb in labels} == {"script:oracle"}
    assert result.feedback["labels"] == 8
    (status,) = store.run_statuses().values()
    assert status["state"] == "finished" and status["steps"] == 450
    assert set(status["agreement"]) == {"script:oracle"}
    assert Path(status["eval_video"]).is_file()


def test_heron_asks_the_app_for_a_factor_ranking_and_waits(store):
    from robofeedback.methods.heron.model import HierarchicalJudge

    task, factors = "bullet:AntBulletEnv-v0", ["progress", "alive", "joints_at_limit"]
    judges = []
    asking = threading.Thread(
        target=lambda: judges.append(
            HierarchicalJudge.from_store(store, task, factors=factors, wait_seconds=60, poll_seconds=0.1)
        )
    )
    asking.start()
    service = AnnotationService(store)
    wait_until(lambda: task in service.factor_tasks())
    assert service.factor_tasks()[task] == factors
    service.rank_factors("quin", task, ["alive", "progress", "joints_at_limit"], costs=["joints_at_limit"])
    asking.join(timeout=30)
    (judge,) = judges
    assert judge.order == ["alive", "progress", "joints_at_limit"] and list(judge.signs) == [1, 1, -1]
    assert store.queries(kind="factor_ranking", status="pending") == []
    with pytest.raises(ValueError, match="none came within"):
        HierarchicalJudge.from_store(store, "bullet:HopperBulletEnv-v0", factors=["progress"], wait_seconds=0.3)
