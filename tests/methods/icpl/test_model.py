import json
import threading

import pytest

from robofeedback.cli import main
from robofeedback.data.store import FeedbackStore
from robofeedback.feedback.llm import OpenAICompatible, Replay
from robofeedback.methods.icpl.model import ICPL, Candidate, ScriptedRanker, StoreRanker, TerminalRanker
from robofeedback.rewards.codegen import factor_code, parse_weights

TINY = {
    "eval_every": 300,
    "eval_episodes": 2,
    "checkpoint_every": 300,
    "sac": {"learning_starts": 100, "batch_size": 32},
    "env_kwargs": {"render_size": 48},
}


def reach_code(scale: float) -> str:
    return (
        "```python\nimport numpy as np\n\ndef compute_reward(obs, action, info):\n"
        f"    distance = float(np.linalg.norm(obs[6:9] - obs[3:6]))\n"
        f"    return -{scale} * distance, {{'distance': -{scale} * distance}}\n```"
    )


def test_offline_proposer_runs_the_loop(tmp_path):
    loop = ICPL(
        "panda:PandaReach-v3", "reach", iterations=2, candidates=2, train_steps=300, config=TINY, out_dir=tmp_path
    )
    summary = loop.run()
    assert summary["proposer"] == "offline:factor-weights" and summary["ranker"] == "script:icpl-ranker"
    assert [row["pairwise_preferences"] for row in summary["iterations"]] == [1, 2]
    first = {row["name"]: row for row in summary["iterations"][0]["candidates"]}
    assert len(first) == 2
    for iteration in (0, 1):
        for index in (0, 1):
            folder = tmp_path / f"iter{iteration}" / f"cand{index}"
            assert (folder / "eval.mp4").exists() and (folder / "code.py").read_text().startswith("# generated")
            score = json.loads((folder / "score.json").read_text())
            assert score["error"] is None and set(score["trace"]) == {"ee_to_target", "ctrl_cost", "progress"}


def test_the_offline_proposer_moves_from_the_rejected_weights_past_the_preferred_ones():
    from robofeedback.envs import make
    from robofeedback.methods.icpl.model import FactorProposer

    proposer = FactorProposer(make("panda:PandaReach-v3", seed=0, render_size=32), seed=0, step=0.5, noise=0.3)
    first = [parse_weights(code) for code, _ in proposer.propose(3, seed=0)]
    assert all(w["ee_to_target"] < 0 < w["progress"] for w in first)  # the factors' own signs
    good = {"ee_to_target": -2.0, "ctrl_cost": -0.1, "progress": 1.0}
    bad = {"ee_to_target": -1.0, "ctrl_cost": -0.5, "progress": 1.0}
    proposer.learn(Candidate(0, 0, factor_code(good)), Candidate(0, 1, factor_code(bad)), "", None)
    samples = [parse_weights(code) for code, _ in proposer.propose(400, seed=1)]
    for name in good:
        mean = sum(w[name] for w in samples) / len(samples)
        assert mean == pytest.approx(good[name] + 0.5 * (good[name] - bad[name]), abs=0.06)


def test_llm_loop_from_a_replay_regenerates_failures_and_prompts_with_the_preference(tmp_path):
    answers = [
        {
            "answers": [
                reach_code(1.0),
                "```python\nimport os\ndef compute_reward(obs, action, info):\n    return 0.0, {}\n```",
            ]
        },
        {"answers": [reach_code(5.0)]},  # the regeneration of the refused one
        {"answers": [reach_code(2.0), "Sorry, I cannot write code today."]},
        {"answers": [reach_code(3.0)]},
        {"answers": ["B scales the distance by 3 instead of 5."]},  # the history-of-differences call
    ]
    replay = tmp_path / "answers.jsonl"
    replay.write_text("".join(json.dumps(a) + "\n" for a in answers))
    loop = ICPL(
        "panda:PandaReach-v3",
        "move the gripper to the green target",
        proposer=Replay(replay),
        iterations=2,
        candidates=2,
        train_steps=300,
        config=TINY,
        out_dir=tmp_path / "run",
    )
    summary = loop.run()
    run = tmp_path / "run"
    refused = json.loads((run / "iter0" / "cand1" / "score.json").read_text())
    assert "import of ['os']" in refused["error"]
    assert "no reward function" in json.loads((run / "iter1" / "cand1" / "score.json").read_text())["error"]
    assert len(summary["iterations"]) == 2
    prompt = json.loads((run / "iter1" / "cand0" / "prompt.json").read_text())
    assert "obs[6:9]: gripper (end effector) position" in prompt[1]["content"]
    assert "info keys: factors (" in prompt[1]["content"] and "success (bool" not in prompt[1]["content"]
    feedback = prompt[2]["content"]
    assert "The preferred reward function" in feedback and "The rejected reward function" in feedback
    assert "distance: [" in feedback  # the reward trace
    assert "B scales the distance" in loop.proposer.feedback  # the difference call went into the history
    assert loop.proposer.client.position == len(answers)


def test_reward_code_never_gets_the_env_reward_or_success(tmp_path, capsys):
    with pytest.raises(ValueError, match="refused: \\['success'\\]"):
        ICPL("panda:PandaReach-v3", "reach", info_keys=("factors", "success"), out_dir=tmp_path)
    assert main(["icpl", "--env", "panda:PandaReach-v3", "--task", "reach", "--info-key", "env_reward"]) == 2
    assert "refused: ['env_reward']" in capsys.readouterr().err


def test_rankers():
    def cand(i, success, ret):
        return Candidate(0, i, "", success_rate=success, mean_env_return=ret)

    assert ScriptedRanker().rank([cand(0, 0.5, -3.0), cand(1, 0.9, -9.0), cand(2, 0.5, -1.0)])[:2] == (1, 0)
    typed = iter(["nonsense", "1 1", "2 0 the arm moved smoothly"])
    shown = []
    ranker = TerminalRanker(ask=lambda prompt: next(typed), show=shown.append)
    assert ranker.rank([cand(0, 0, 0), cand(1, 0, 0), cand(2, 0, 0)]) == (2, 0, "the arm moved smoothly")
    assert any("two different numbers" in line for line in shown)


def test_people_rank_through_the_store(tmp_path):
    from robofeedback.data.rollout import collect
    from robofeedback.envs import make

    env = make("panda:PandaReach-v3", seed=0, render_size=32, flatten=True)
    candidates = []
    for i in range(3):
        folder = tmp_path / f"cand{i}"
        collect(env, None, n_steps=5, seed=i)[0].save(folder / "final_episode.npz")
        candidates.append(Candidate(0, i, "", out_dir=str(folder), video=str(folder / "eval.mp4")))
    store = FeedbackStore(tmp_path / "f.db")

    def person():
        while not store.queries(run="icpl", kind="ranking"):
            threading.Event().wait(0.05)
        query = store.queries(run="icpl", kind="ranking")[0]
        store.answer_query(
            query.id, "human:ana", best=query.segment_ids[2], worst=query.segment_ids[0], note="2 is calm"
        )

    thread = threading.Thread(target=person)
    thread.start()
    best, worst, note = StoreRanker(store, poll_seconds=0.05, wait_seconds=30).rank(candidates)
    thread.join()
    assert (best, worst, note) == (2, 0, "2 is calm")


def test_factor_code_round_trips_its_weights():
    weights = {"ee_to_target": -1.5, "progress": 0.25}
    assert parse_weights(factor_code(weights)) == weights


def test_replays_and_recordings(tmp_path, chat_server):
    server = chat_server(replies=["first", "second"])
    record = tmp_path / "rec.jsonl"
    client = OpenAICompatible(server.url, "m", cache=None, record=record)
    assert client.complete([{"role": "user", "content": "hi"}]) == ["first"]
    assert client.complete([{"role": "user", "content": "again"}]) == ["second"]
    replay = Replay(record)
    assert replay.complete([{"role": "user", "content": "anything"}]) == ["first"]
    assert replay.complete([]) == ["second"]
    with pytest.raises(RuntimeError, match="only 2 recorded calls"):
        replay.complete([])
    (tmp_path / "bad.jsonl").write_text('{"answer": "x"}\n')
    with pytest.raises(ValueError, match="line 1"):
        Replay(tmp_path / "bad.jsonl")


def test_cli_icpl_needs_a_task_and_one_source(capsys, tmp_path):
    assert main(["icpl", "--env", "gym:Pendulum-v1"]) == 2  # no task text is known for it
    assert "--task" in capsys.readouterr().err
    args = ["icpl", "--env", "panda:PandaReach-v3", "--task", "reach", "--llm", "http://x/v1", "--replay", "f"]
    assert main(args) == 2
    assert "not both" in capsys.readouterr().err


def test_the_shipped_replay_is_what_its_script_writes():
    import importlib.util
    from pathlib import Path

    from robofeedback.methods.icpl.bench import replay_path
    from robofeedback.rewards.code import check_code, extract_code

    script = Path(__file__).resolve().parents[3] / "scripts" / "write_icpl_replays.py"
    spec = importlib.util.spec_from_file_location("write_icpl_replays", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for task, lines in (("panda:PandaReach-v3", module.REACH), ("metaworld:drawer-close", module.DRAWER_CLOSE)):
        assert [line["answers"] for line in Replay(replay_path(task)).lines] == lines
        codes = [extract_code(a) for line in lines for a in line if "```python" in a]
        assert len(codes) == 13 and all(check_code(code) for code in codes)


def test_servers_that_ignore_n_are_asked_again(tmp_path, chat_server):
    server = chat_server(replies=["one", "two", "three"])  # answers each request with a single choice
    client = OpenAICompatible(server.url, "m", cache=tmp_path / "cache")
    assert client.complete([{"role": "user", "content": "write three"}], n=3, seed=7) == ["one", "two", "three"]
    assert [r["seed"] for r in server.requests] == [7, 8, 9] and [r["n"] for r in server.requests] == [3, 2, 1]
    assert client.complete([{"role": "user", "content": "write three"}], n=3, seed=7) == ["one", "two", "three"]
    assert len(server.requests) == 3  # the second time from the cache
