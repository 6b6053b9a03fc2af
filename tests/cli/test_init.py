"""The ``robofeedback`` command as a whole: its help, its errors, and the parser's checks."""

import subprocess
import sys

import pytest

from robofeedback.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "robofeedback.cli", *args], capture_output=True, text=True)


def test_help_explains_every_command_and_option():
    out = run_cli("--help").stdout
    for command in ("envs", "train", "rollout"):
        assert command in out
    out = run_cli("train", "--help").stdout
    for option in ("--env", "--reward", "--algo", "--steps", "--seed", "--out", "--config", "--no-resume"):
        assert option in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--env", "panda:PandaRech-v3", "--steps", "10"], "Did you mean PandaReach-v3"),
        (["rollout", "--env", "panda:PandaReach-v3", "--policy", "nowhere/model.zip"], "no model at"),
        (["envs", "--family", "atari"], "unknown family"),
        (["train", "--env", "metaworld:drawer-open", "--reward", "varp", "--judge", "chat"], "base_url"),
        (["train", "--env", "panda:PandaSlide-v3", "--reward", "varp"], "--judge clip needs --goal"),
    ],
)
def test_errors_exit_2_with_a_message(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_bad_numbers_are_refused_by_the_parser():
    result = run_cli("train", "--env", "panda:PandaReach-v3", "--steps", "0")
    assert result.returncode == 2 and "positive integer" in result.stderr
