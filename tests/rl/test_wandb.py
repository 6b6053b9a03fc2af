"""Weights & Biases beside TensorBoard: real PPO runs on Pendulum logged offline, read back from the files W&B wrote."""

import json
import os
import struct
import sys
from pathlib import Path

import pytest
from stable_baselines3.common.callbacks import BaseCallback

from robofeedback.cli import main
from robofeedback.rl import train

wandb = pytest.importorskip("wandb")

pytestmark = pytest.mark.filterwarnings("ignore:.*no agent position:UserWarning")  # Pendulum has no arm

TINY = {
    "eval_every": 128,
    "eval_episodes": 1,
    "checkpoint_every": 128,
    "video_episodes": 0,
    "ppo": {"n_steps": 128, "batch_size": 32, "n_epochs": 1},
}
OFFLINE = {"project": "robofeedback-test", "mode": "offline"}


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline and silent, its own files in ``tmp_path`` (runs go under each run's out dir); the W&B service
    process it starts is stopped afterwards."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    yield
    stop_wandb()


def stop_wandb() -> None:
    """Stop W&B's service process, which finishes writing the runs' files (it may still be writing when
    ``run.finish()`` returns), and check that it is gone."""
    wandb.teardown()
    assert not _children_named("wandb")


def _children_named(word: str) -> list[str]:
    """The names of this process's child processes whose name holds ``word`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(rest[1]) == os.getpid() and word in name:
            found.append(name)
    return found


def read_run(path: Path) -> dict:
    """An offline run's ``.wandb`` file, the log ``wandb sync`` uploads: a LevelDB-style log (a 7-byte header, then
    32 KiB blocks of chunks, each with a 7-byte header: checksum, length, type) of ``Record`` protobufs. Returns its
    config, history (one dict per logged step) and exit code."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    run: dict = {"config": {}, "history": [], "exit_code": None}
    pos, payload = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = payload + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind not in (1, 4):  # FULL or LAST end a record; FIRST and MIDDLE continue it
            continue
        record, payload = pb.Record.FromString(payload), b""
        field = record.WhichOneof("record_type")
        if field == "run":
            run["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif field == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            run["history"].append(row)
        elif field == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def offline_runs(folder: Path) -> list[dict]:
    """The offline runs under ``folder``/wandb, each read with :func:`read_run` (plus its id)."""
    paths = sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))
    return [{**read_run(path), "id": path.stem.removeprefix("run-")} for path in paths]


def test_train_logs_to_wandb_offline_and_resumes_the_same_run(tmp_path, offline_wandb):
    out = tmp_path / "pendulum"
    train("Pendulum-v1", algo="ppo", total_steps=256, out_dir=out, config=TINY, progress=False, wandb=OFFLINE)
    stop_wandb()
    assert list((out / "tb" / "run_0").glob("events.out.tfevents.*"))  # TensorBoard as before
    (first,) = offline_runs(out)
    assert first["exit_code"] == 0
    config = first["config"]
    assert config["env"] == "Pendulum-v1" and config["algo"] == "ppo" and config["seed"] == 0
    assert config["reward"] == "EnvReward"
    assert config["config"]["total_steps"] == 256 and config["config"]["algo_kwargs"]["n_steps"] == 128
    code = json.loads((out / "summary.json").read_text())["code"]
    assert config["code"]["git_commit"] == code["git_commit"] and config["code"]["packages"] == code["packages"]
    evals = [row for row in first["history"] if "eval/mean_env_return" in row]
    assert [row["_step"] for row in evals] == [128, 256]
    assert any("train/value_loss" in row for row in first["history"])
    assert all("time/total_timesteps" not in row for row in first["history"])  # excluded from TensorBoard too

    (out / "wandb").rename(tmp_path / "first-wandb")  # as if synced and cleaned
    train("Pendulum-v1", algo="ppo", total_steps=384, out_dir=out, config=TINY, progress=False, wandb=OFFLINE)
    stop_wandb()
    (resumed,) = offline_runs(out)
    assert resumed["id"] == first["id"]  # the same W&B run goes on
    assert [row["_step"] for row in resumed["history"] if "eval/mean_env_return" in row] == [384]
    assert len(list((out / "tb").iterdir())) == 1  # and the same TensorBoard folder


class Fails(BaseCallback):
    def _on_step(self) -> bool:
        raise RuntimeError("boom")


def test_a_failed_training_finishes_its_run(tmp_path, offline_wandb):
    out = tmp_path / "fails"
    with pytest.raises(RuntimeError, match="boom"):
        train(
            "Pendulum-v1",
            algo="ppo",
            total_steps=128,
            out_dir=out,
            config=TINY,
            progress=False,
            wandb=OFFLINE,
            callbacks=[Fails()],
        )
    assert wandb.run is None
    stop_wandb()
    (run,) = offline_runs(out)
    assert run["exit_code"] == 1


def test_without_wandb_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'robofeedback\[share\]'"):
        train("Pendulum-v1", algo="ppo", total_steps=128, out_dir=tmp_path, config=TINY, progress=False, wandb="p")


def test_cli_wandb_offline(tmp_path, offline_wandb, monkeypatch, capsys):
    import yaml

    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-runs"))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    args = ["train", "--env", "Pendulum-v1", "--algo", "ppo", "--steps", "128", "--config", str(config)]
    args += ["--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*args, "--wandb", "robofeedback-test", "--wandb-mode", "offline"]) == 0
    stop_wandb()
    (run,) = offline_runs(tmp_path / "wandb-runs")  # WANDB_DIR, when set, is where runs go
    assert run["config"]["env"] == "Pendulum-v1" and run["exit_code"] == 0
    assert main([*args, "--wandb-mode", "offline"]) == 2
    assert "--wandb-mode needs --wandb PROJECT" in capsys.readouterr().err
