import numpy as np
import pytest

from robofeedback.data.rollout import collect
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make
from robofeedback.envs.experts import expert
from robofeedback.feedback.llm import OpenAICompatible
from robofeedback.feedback.vlm import ChatVLMJudge, ClipJudge, parse_label


@pytest.fixture(scope="module")
def drawer_segments():
    """Last 20 steps of drawer-open episodes: two by the scripted expert (drawer open), two by random actions."""
    env = make("metaworld:drawer-open", seed=0, render_size=96, max_episode_steps=120)
    opened = collect(env, expert(env), n_episodes=2, render=True, seed=0)
    closed = collect(env, None, n_episodes=2, render=True, seed=1)
    tail = [t.segment(len(t) - 20, len(t)) for t in opened + closed]
    return env, tail[:2], tail[2:]


def ask(store, judge, pairs):
    store.add_segments([s for pair in pairs for s in pair], run="r")
    ids = [store.add_query("preference", [a.id, b.id], run="r") for a, b in pairs]
    judge.answer(store, [store.get_query(q) for q in ids], {s.id: s for pair in pairs for s in pair})
    return [store.labels(kind="preference", run="r")[i] for i in range(len(ids))]


def test_clip_judge_prefers_the_open_drawer_and_labels_through_the_store(tmp_path, drawer_segments):
    env, opened, closed = drawer_segments
    judge = ClipJudge("the drawer is open", baseline="the drawer is closed", alpha=1.0, camera=env.camera_at)
    store = FeedbackStore(tmp_path / "f.db")
    labels = ask(store, judge, [(opened[0], closed[0]), (closed[1], opened[1])])
    assert [lb.value for lb in labels] == ["a", "b"]
    assert {lb.source for lb in labels} == {"vlm:clip-mini"}
    assert labels[0].note.startswith("clip similarity")
    assert labels[0].payload["prompt"] == "goal: the drawer is open; baseline: the drawer is closed; alpha 1.0"


def test_plain_and_sketched_images_and_the_margin(drawer_segments):
    env, opened, closed = drawer_segments
    plain = ClipJudge("the drawer is open", sketch=False)
    sketched = ClipJudge("the drawer is open", camera=env.camera_at)
    assert np.array_equal(plain.image(opened[0]), opened[0].frames[-1])
    assert not np.array_equal(sketched.image(opened[0]), opened[0].frames[-1])  # the path is drawn on it
    cautious = ClipJudge("the drawer is open", sketch=False, margin=10.0)  # similarities differ by far less
    assert cautious.label_many([(opened[0], closed[0])])[0][0] == "skip"
    cautious_equal = ClipJudge("the drawer is open", sketch=False, margin=10.0, uncertain="equal")
    assert cautious_equal.label_many([(opened[0], closed[0])])[0][0] == "equal"
    with pytest.raises(ValueError, match="camera"):
        ClipJudge("the drawer is open").image(opened[0])
    with pytest.raises(ValueError, match="uncertain"):
        ClipJudge("the drawer is open", uncertain="maybe")


def test_judges_read_stored_segments_from_their_videos(tmp_path, drawer_segments):
    from robofeedback.data.video import write_video

    env, opened, closed = drawer_segments
    store = FeedbackStore(tmp_path / "f.db")
    videos = [str(write_video(s.frames, tmp_path / f"{i}.mp4", fps=10)) for i, s in enumerate([*opened, *closed])]
    store.add_segments([*opened, *closed], run="r", video_paths=videos)
    stored = store.get_segments([s.id for s in [*opened, *closed]])
    judge = ClipJudge("the drawer is open", baseline="the drawer is closed", alpha=1.0, camera=env.camera_at)
    pairs = [(stored[0], stored[2]), (stored[3], stored[1])]
    assert [value for value, _ in judge.label_many(pairs)] == ["a", "b"]


@pytest.mark.parametrize(
    ("reply", "label"),
    [("0", "a"), ("1", "b"), ("-1", "uncertain"), ("Answer: 1", "b"), (" 0\nbecause", "a"), ("10", "uncertain")],
)
def test_label_replies_are_parsed_robustly(reply, label):
    assert parse_label(reply) == label


@pytest.mark.parametrize("reply", ["1.5", "", "I cannot tell", "image two"])
def test_replies_without_an_answer_are_uncertain(reply):
    assert parse_label(reply) == "uncertain"


def test_chat_judge_two_stage_query_over_http_with_cache(tmp_path, chat_server, drawer_segments):
    env, opened, closed = drawer_segments
    server = chat_server(label_reply="1")
    client = OpenAICompatible(server.url, "test-vlm", cache=tmp_path / "cache")
    judge = ChatVLMJudge("to open the drawer", client=client, camera=env.camera_at)
    store = FeedbackStore(tmp_path / "f.db")
    (label,) = ask(store, judge, [(closed[0], opened[0])])
    assert label.value == "b" and label.source == "vlm:test-vlm"
    assert "drawer open further" in label.note
    assert label.payload["prompt"].count("to open the drawer") == 2  # both stages' prompts, the task filled in
    analysis, labelling = server.requests
    parts = analysis["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in images)
    assert "to open the drawer" in " ".join(p["text"] for p in parts if p["type"] == "text")
    assert isinstance(labelling["messages"][0]["content"], str)  # stage 2 is text only: the analysis
    assert "drawer open further" in labelling["messages"][0]["content"]
    assert [u["prompt_tokens"] for u in client.usage] == [11, 11]
    # the same query again, from a new client on the same cache: the server is not asked
    fresh_client = OpenAICompatible(server.url, "test-vlm", cache=tmp_path / "cache")
    again = ChatVLMJudge("to open the drawer", client=fresh_client, camera=env.camera_at)
    assert again.label_many([(closed[0], opened[0])])[0][0] == "b"
    assert len(server.requests) == 2


@pytest.mark.parametrize(("reply", "uncertain", "value"), [("-1", "skip", "skip"), ("no idea", "equal", "equal")])
def test_chat_judge_drops_or_equates_unsure_answers(tmp_path, chat_server, drawer_segments, reply, uncertain, value):
    env, opened, closed = drawer_segments
    server = chat_server(label_reply=reply)
    client = OpenAICompatible(server.url, "test-vlm", cache=None)
    judge = ChatVLMJudge("to open the drawer", client=client, sketch=False, uncertain=uncertain)
    store = FeedbackStore(tmp_path / "f.db")
    (label,) = ask(store, judge, [(opened[0], closed[0])])
    assert label.value == value
    assert store.get_query(label.query_id).status == ("skipped" if value == "skip" else "answered")


def test_transient_server_errors_are_retried(tmp_path, chat_server, drawer_segments):
    _, opened, closed = drawer_segments
    server = chat_server(label_reply="0", failures=2)
    client = OpenAICompatible(server.url, "test-vlm", cache=None, max_retries=3)
    judge = ChatVLMJudge("to open the drawer", client=client, sketch=False)
    assert judge.label_many([(opened[0], closed[0])])[0][0] == "a"
    assert len(server.requests) == 4  # two failures, then the analysis and the label


def test_custom_prompts_must_keep_their_fields(tmp_path, chat_server):
    server = chat_server()
    (tmp_path / "plain_analysis.txt").write_text("Compare {image_1} and {image_2}.")  # no {task}
    (tmp_path / "plain_label.txt").write_text("{task}: {analysis}")
    with pytest.raises(ValueError, match="task"):
        ChatVLMJudge("x", base_url=server.url, model="m", prompts=tmp_path, sketch=False)
    with pytest.raises(ValueError, match="base_url"):
        ChatVLMJudge("to open the drawer")


def test_a_prompt_folder_may_hold_only_the_prompts_it_changes(tmp_path, chat_server):
    server = chat_server()
    (tmp_path / "video_compare.txt").write_text("Task {task}. Expert: {expert} Learner: {learner} SIMILARITY?")
    judge = ChatVLMJudge("to open the drawer", base_url=server.url, model="m", prompts=tmp_path)
    assert judge.video_prompt.startswith("Task {task}") and "yellow" in judge.analysis_prompt  # the shipped VARP one
    with pytest.raises(FileNotFoundError, match="folder of prompt files"):
        ChatVLMJudge("to open the drawer", base_url=server.url, model="m", prompts=tmp_path / "none")
