import json
from itertools import pairwise

import numpy as np
import pytest

from robofeedback.cli import main
from robofeedback.config import assets_dir
from robofeedback.data.video import VideoError, read_video, write_video
from robofeedback.feedback.llm import OpenAICompatible, Replay
from robofeedback.feedback.vlm import ChatVLMJudge, ClipVideoJudge, dtw, motion_track, parse_similarity
from robofeedback.methods.bilevel.model import BilevelVideoReward, FeedbackWeightUpdater, load_expert_video
from robofeedback.rewards.codegen import factor_code, parse_weights

EXPERT = assets_dir() / "videos" / "metaworld-drawer-close-expert.mp4"
TINY = {
    "eval_every": 200,
    "eval_episodes": 1,
    "checkpoint_every": 200,
    "sac": {"learning_starts": 100, "batch_size": 32},
    "env_kwargs": {"render_size": 48, "max_episode_steps": 40},
}


@pytest.fixture(scope="module")
def judge():
    return ClipVideoJudge()


@pytest.fixture(scope="module")
def expert():
    return load_expert_video(EXPERT, fps=20)


def square_video(path_xy, size=48, side=6):
    """A white square on black moving through pixel positions ``path_xy``."""
    frames = np.zeros((len(path_xy), size, size, 3), np.uint8)
    for t, (x, y) in enumerate(path_xy):
        frames[t, y : y + side, x : x + side] = 255
    return frames


def test_the_shipped_expert_video_loads_trimmed_and_resampled(tmp_path, expert):
    meta = json.loads(EXPERT.with_suffix(".json").read_text())
    assert meta["success"] and meta["fps"] == 40
    assert len(read_video(EXPERT)) == meta["frames"]
    assert abs(len(expert) - meta["frames"] / 2) <= 1  # 40 fps -> 20 fps
    trimmed = load_expert_video(EXPERT, fps=20, start=0.5, end=1.5)
    assert 18 <= len(trimmed) <= 21
    folder = tmp_path / "frames"
    folder.mkdir()
    import imageio.v3 as iio

    for i, frame in enumerate(expert[:10]):
        iio.imwrite(folder / f"{i:03d}.png", frame)
    assert len(load_expert_video(folder, fps=20)) == 10
    assert len(load_expert_video(folder, fps=10, frames_fps=20)) == 5


def test_bad_expert_video_input_is_a_clear_error(tmp_path):
    with pytest.raises(VideoError, match="no expert video"):
        load_expert_video(tmp_path / "missing.mp4", fps=20)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="could not read"):
        load_expert_video(garbage, fps=20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        load_expert_video(tmp_path / "empty", fps=20)
    with pytest.raises(VideoError, match="no frames in the requested range"):
        load_expert_video(EXPERT, fps=20, start=30.0)
    with pytest.raises(VideoError, match="after start"):
        load_expert_video(EXPERT, fps=20, start=1.0, end=0.5)
    with pytest.raises(VideoError, match="fps must be a positive"):
        load_expert_video(EXPERT, fps=0)
    with pytest.raises(VideoError, match="start and end apply only"):
        load_expert_video(tmp_path / "empty", fps=20, start=1.0)
    one = tmp_path / "one.mp4"
    write_video(np.zeros((1, 16, 16, 3), np.uint8), one, fps=5)
    with pytest.raises(VideoError, match="at least 2"):
        load_expert_video(one, fps=5)


def test_dtw_aligns_a_time_warped_copy():
    x = np.linspace(0, 1, 8)
    warped = np.repeat(x, [1, 1, 3, 1, 1, 2, 1, 1])  # some samples held for longer
    path = dtw(np.abs(warped[:, None] - x[None]))
    assert path[0] == (0, 0) and path[-1] == (len(warped) - 1, len(x) - 1)
    assert all(0 <= i2 - i1 <= 1 and 0 <= j2 - j1 <= 1 for (i1, j1), (i2, j2) in pairwise(path))
    assert all(warped[i] == x[j] for i, j in path)  # every frame matched to its own value: zero cost
    assert dtw(np.abs(x[:, None] - x[None])) == [(i, i) for i in range(8)]
    with pytest.raises(ValueError, match="finite, non-empty"):
        dtw(np.zeros((0, 3)))


def test_motion_track_follows_what_moves():
    frames = square_video([(5 + 4 * t, 30) for t in range(8)])
    centres, energy = motion_track(frames)
    assert energy[0] == 0 and (energy[1:] > 0).all()
    assert np.all(np.diff(centres[1:, 0]) > 0)  # moving right
    assert np.allclose(centres[1:, 1], centres[1, 1]) and centres[1, 1] < 0.5  # low in the picture (y is up)
    still_centres, still_energy = motion_track(np.repeat(frames[:1], 5, axis=0))
    assert (still_energy == 0).all() and np.allclose(still_centres, 0.5)


def test_the_offline_judge_knows_the_expert_from_a_still_copy(judge, expert):
    same = judge.compare_videos(expert, expert, fps=20)
    assert same.similarity == pytest.approx(1.0, abs=1e-3)
    assert [p["status"] for p in same.details["phases"]] == ["matched"] * 4
    assert "not a VLM" in same.text and same.judge.startswith("offline:clip-dtw")
    still = judge.compare_videos(np.repeat(expert[:1], len(expert), axis=0), expert, fps=20)
    assert still.similarity < same.similarity - 0.2
    assert still.details["comparison"]["amount_ratio"] < 0.01
    assert "barely moves" in still.text
    assert any(p["status"] != "matched" for p in still.details["phases"])
    with pytest.raises(ValueError, match="learner video must be at least 2"):
        judge.compare_videos(expert[:1], expert, fps=20)


@pytest.mark.parametrize("layout, images", [("grid", 2), ("sequence", 8)])
def test_chat_judge_compares_videos_over_http(tmp_path, chat_server, expert, layout, images):
    reply = "The learner never reaches the handle.\nIt should move forward faster.\nSIMILARITY: 3/10"
    server = chat_server(replies=[reply])
    client = OpenAICompatible(server.url, "vlm-test", cache=tmp_path / "cache")
    judge = ChatVLMJudge("to push the drawer closed", client=client, video_frames=4, video_layout=layout)
    feedback = judge.compare_videos(expert[::-1], expert, fps=20)
    assert feedback.text == reply and feedback.similarity == pytest.approx(0.3)
    assert feedback.judge == "vlm:vlm-test"
    (request,) = server.requests
    content = request["messages"][0]["content"]
    assert sum(part["type"] == "image_url" for part in content) == images
    text = " ".join(part.get("text", "") for part in content)
    assert "to push the drawer closed" in text and "SIMILARITY" in text
    assert text.index("expert") < text.index("learner")


@pytest.mark.parametrize(
    "answer, value",
    [("SIMILARITY: 7", 0.7), ("similarity = 4.5/10", 0.45), ("Similarity: 12", 1.0), ("no score here", None)],
)
def test_similarity_lines_are_parsed(answer, value):
    if value is None:
        assert np.isnan(parse_similarity(answer))
    else:
        assert parse_similarity(answer) == pytest.approx(value)


def record(iteration, similarity, weights, amount=1.0, speed=1.0, statuses=("matched",) * 4, height="about the same"):
    phases = [{"phase": k + 1, "status": s} for k, s in enumerate(statuses)]
    comparison = {"amount_ratio": amount, "speed_ratio": speed, "end_gap": 0.0, "height": height}
    return {
        "iteration": iteration,
        "similarity": similarity,
        "code": factor_code(weights),
        "details": {"comparison": comparison, "phases": phases},
    }


def test_the_offline_lower_level_moves_the_factor_weights():
    from robofeedback.envs import make

    env = make("bullet:HopperBulletEnv-v0", seed=0, render_size=32)
    updater = FeedbackWeightUpdater(env, step=0.5)
    first = parse_weights(updater.initial(0)[0])
    assert first == {name: float(f.sign) for name, f in env.factor_info.items()}
    still = record(0, 0.3, first, amount=0.1)
    updater.observe(still)
    code, note, _ = updater.propose(still, seed=0)
    moved = parse_weights(code)
    assert moved["electricity"] == pytest.approx(-0.5) and moved["ctrl_cost"] == pytest.approx(-0.5)
    assert moved["progress"] == pytest.approx(1.5) and moved["alive"] == pytest.approx(1.0)
    assert "not an LLM" in note and "effort weights x0.5" in note
    fallen = record(1, 0.4, moved, height="lower", statuses=("matched", "missing", "matched", "matched"))
    updater.observe(fallen)
    again = parse_weights(updater.propose(fallen, seed=1)[0])
    assert again["alive"] == pytest.approx(1.5) and again["progress"] == pytest.approx(2.25)
    worse = record(2, 0.2, again, amount=3.0)
    updater.observe(worse)  # below the best: back to the best weights, half the step
    code, note, _ = updater.propose(worse, seed=2)
    assert updater.step == pytest.approx(0.25) and "below the best" in note
    assert parse_weights(code)["alive"] == pytest.approx(1.25)  # the best's feedback, with the halved step
    with pytest.raises(ValueError, match="offline judge's measurements"):
        updater.propose({**worse, "details": {}}, seed=3)


def test_the_offline_loop_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ("metaworld:drawer-close", EXPERT, "to push the drawer closed")
    first = BilevelVideoReward(*args, train_steps=200, config=TINY, out_dir=out).run(1)
    assert len(first["iterations"]) == 1 and first["updater"] == "offline:feedback-weights"
    stamp = (out / "iter0" / "result.json").stat().st_mtime_ns
    summary = BilevelVideoReward(*args, train_steps=200, config=TINY, out_dir=out).run(2)
    assert (out / "iter0" / "result.json").stat().st_mtime_ns == stamp  # a finished iteration is not redone
    assert [row["iteration"] for row in summary["iterations"]] == [0, 1]
    for i in (0, 1):
        folder = out / f"iter{i}"
        result = json.loads((folder / "result.json").read_text())
        assert 0 <= result["similarity"] <= 1 and result["success_rate"] is not None
        assert (folder / "feedback.txt").read_text().startswith("Offline judge")
        sbs, learner = read_video(folder / "side_by_side.mp4"), read_video(folder / "learner.mp4")
        assert sbs.shape[2] > sbs.shape[1] and len(sbs) == max(len(learner), len(read_video(EXPERT, fps=20)))
    assert parse_weights((out / "iter1" / "code.py").read_text()) != parse_weights(
        (out / "iter0" / "code.py").read_text()
    )
    # A crash after iteration 1's training: its code and checkpoint are kept, the judging is redone.
    code = (out / "iter1" / "code.py").read_text()
    (out / "iter1" / "result.json").unlink()
    again = BilevelVideoReward(*args, train_steps=200, config=TINY, out_dir=out).run(2)
    assert (out / "iter1" / "code.py").read_text() == code
    assert again["iterations"] == summary["iterations"]


def test_the_llm_loop_from_a_replay_regenerates_refused_code_and_prompts_with_the_feedback(tmp_path):
    def code(body):
        return f"```python\nimport numpy as np\n\ndef compute_reward(obs, action, info):\n{body}```"

    answers = [
        code("    d = float(np.linalg.norm(obs[0:3] - obs[4:7]))\n    return -d, {'reach': -d}\n"),
        code('    return float(info["no_such_key"]), {}\n'),
        code("    d = float(np.linalg.norm(obs[4:7] - obs[36:39]))\n    return -d, {'to_goal': -d}\n"),
    ]
    replay = tmp_path / "answers.jsonl"
    replay.write_text("".join(json.dumps({"answers": [a]}) + "\n" for a in answers))
    out = tmp_path / "run"
    loop = BilevelVideoReward(
        "metaworld:drawer-close",
        EXPERT,
        "to push the drawer closed",
        llm=Replay(replay),
        train_steps=200,
        config=TINY,
        out_dir=out,
    )
    summary = loop.run(2)
    assert summary["updater"] == "llm:replay" and loop.updater.client.position == 3
    attempts = json.loads((out / "iter1" / "attempts.json").read_text())
    assert [a["error"] is None for a in attempts] == [False, True] and "no_such_key" in attempts[0]["error"]
    assert "to_goal" in (out / "iter1" / "code.py").read_text()
    prompt = json.loads((out / "iter1" / "prompt.json").read_text())[1]["content"]
    feedback = (out / "iter0" / "feedback.txt").read_text().strip()
    assert feedback in prompt and "reach: [" in prompt and "obs[36:39]: goal position" in prompt
    assert "env_reward" not in prompt and "success rate" not in prompt


def test_free_text_judges_need_an_llm(tmp_path, chat_server):
    client = OpenAICompatible(chat_server().url, "vlm-test", cache=None)
    with pytest.raises(ValueError, match="free text: give llm="):
        BilevelVideoReward(
            "metaworld:drawer-close",
            EXPERT,
            "close it",
            judge=ChatVLMJudge("close it", client=client),
            out_dir=tmp_path,
        )


def test_the_shipped_replay_is_what_its_script_writes():
    import importlib.util
    from pathlib import Path

    from robofeedback.rewards.code import check_code, extract_code

    script = Path(__file__).resolve().parents[3] / "scripts" / "write_bilevel_replays.py"
    spec = importlib.util.spec_from_file_location("write_bilevel_replays", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    replay = Replay(assets_dir() / "bilevel" / "metaworld-drawer-close.jsonl")
    assert [line["answers"] for line in replay.lines] == module.DRAWER_CLOSE
    assert all(check_code(extract_code(a)) for line in module.DRAWER_CLOSE for a in line)


def test_cli_video_reward(tmp_path, capsys):
    assert main(["video-reward", "--env", "panda:PandaFlip-v3", "--expert", str(EXPERT)]) == 2
    assert "needs --task" in capsys.readouterr().err
    assert main(["video-reward", "--env", "metaworld:drawer-close", "--expert", str(EXPERT), "--judge", "chat"]) == 2
    assert "--vlm-url" in capsys.readouterr().err
    assert main(["video-reward", "--env", "metaworld:drawer-close", "--expert", str(tmp_path / "none.mp4")]) == 2
    assert "no expert video" in capsys.readouterr().err
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    argv = ["video-reward", "--env", "metaworld:drawer-close", "--expert", str(EXPERT), "--iterations", "1"]
    assert main([*argv, "--steps", "200", "--config", str(config), "--out", str(out)]) == 0
    assert "similarity to the expert" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["iterations"][0]["iteration"] == 0
