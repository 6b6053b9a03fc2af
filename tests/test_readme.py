"""The README's examples still work: every ```python block runs to the end in a fresh interpreter and prints no
traceback (at interpreter exit included), and every ``robofeedback`` command of its ```bash blocks parses.

Blocks that train run with a step cap: a prelude, run before the block in its interpreter, makes the training
config that ``train`` loads stop after ``STEP_CAP`` steps, with SAC's warm-up, evaluations (2 episodes) and one
feedback round of at most 10 labels to fit, and runs the bi-level loop for 2 of its iterations. The block's own code
runs unchanged, end to end.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from robofeedback.apps.annotate import AppServer
from robofeedback.cli import build_parser
from robofeedback.data import collect, write_video
from robofeedback.data.annotators import AnnotatorRegistry
from robofeedback.data.store import FeedbackStore
from robofeedback.envs import make

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
STEP_CAP = 200
# The README's annotation-app example talks to the app it started; here the test's app and its program's secret.
APP_URL, APP_SECRET = "http://127.0.0.1:7860", "<the program's secret>"
TRAINS = re.compile(r"\btrain\(|BilevelVideoReward\(")

PRELUDE = """
import importlib
import runpy
import sys
from dataclasses import replace

train_module = importlib.import_module("robofeedback.rl.train")  # the module; robofeedback.rl.train is the function
load_train_config = train_module.load_train_config
cap = int(sys.argv[1])


def capped(*args, **kwargs):
    cfg = load_train_config(*args, **kwargs)
    steps = min(cfg.total_steps, cap)
    algo_kwargs = dict(cfg.algo_kwargs)
    if "learning_starts" in algo_kwargs:
        algo_kwargs["learning_starts"] = min(algo_kwargs["learning_starts"], steps // 2)
    feedback = {
        **cfg.feedback,
        "every": min(cfg.feedback.get("every", 5000), steps),
        "labels_per_round": min(cfg.feedback.get("labels_per_round", 50), 10),
    }
    return replace(
        cfg,
        total_steps=steps,
        eval_every=min(cfg.eval_every, steps),
        eval_episodes=min(cfg.eval_episodes, 2),
        checkpoint_every=min(cfg.checkpoint_every, steps),
        video_episodes=min(cfg.video_episodes, 1),
        algo_kwargs=algo_kwargs,
        feedback=feedback,
    )


train_module.load_train_config = capped
bilevel = importlib.import_module("robofeedback.methods.bilevel.model").BilevelVideoReward
run_bilevel = bilevel.run
bilevel.run = lambda self, iterations=5: run_bilevel(self, min(iterations, 2))
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def blocks(language: str) -> list[tuple[str, str]]:
    """(the heading of its section, code) for every ```<language> block of the README, in order."""
    found, heading = [], "README"
    for match in re.finditer(r"^(#+) ([^\n]+)$|^( *)```(\w*)\n(.*?)^\3```", README, re.M | re.S):
        if match[1]:
            heading = match[2]
        elif match[4] == language:
            found.append((heading, textwrap.dedent(match[5])))
    return found


PYTHON = blocks("python")


@pytest.fixture
def annotation_app(tmp_path):
    """The annotation app over a store with one pending preference query and a registered program."""
    store = FeedbackStore(tmp_path / "feedback.db")
    env = make("panda:PandaReach-v3", seed=0, render_size=(80, 60))
    (trajectory,) = collect(env, None, n_episodes=1, render=True, seed=0)
    env.close()
    segments = [trajectory.segment(0, 10), trajectory.segment(10, 20)]
    videos = [str(write_video(s.frames, tmp_path / f"clip{i}.mp4", fps=10)) for i, s in enumerate(segments)]
    store.add_segments(segments, run="readme", video_paths=videos)
    query = store.add_query("preference", [s.id for s in segments], run="readme")
    source, secret = AnnotatorRegistry(store).add("script:readme", program=True)
    with AppServer(store, port=0) as app:
        yield SimpleNamespace(url=app.url, secret=secret, store=store, query=query, source=source)
    store.close()


@pytest.mark.parametrize("heading, code", PYTHON, ids=[heading for heading, _ in PYTHON])
def test_python_example_runs_without_a_traceback(heading, code, tmp_path, request):
    app = request.getfixturevalue("annotation_app") if APP_URL in code else None
    if app is not None:
        code = code.replace(APP_URL, app.url).replace(APP_SECRET, app.secret)
    work = tmp_path / "work"
    work.mkdir()
    (work / "assets").symlink_to(ROOT / "assets")  # examples name shipped files from the repository root
    (work / "example.py").write_text(code)
    command = ["-c", PRELUDE, str(STEP_CAP), "example.py"] if TRAINS.search(code) else ["example.py"]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "MUJOCO_GL": "egl", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": path}
    result = subprocess.run([sys.executable, *command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    if TRAINS.search(code):
        assert any(work.rglob("summary.json")), "the example trained nothing"
    if app is not None:
        assert [(label.query_id, label.source) for label in app.store.labels()] == [(app.query, app.source)]


def test_python_examples_are_found():
    assert len(PYTHON) >= 10
    assert "Environments" in [heading for heading, _ in PYTHON]


def robofeedback_commands() -> list[list[str]]:
    commands = []
    for _, block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "robofeedback":
                commands.append(argv[1:])
    return commands


@pytest.mark.parametrize("argv", robofeedback_commands(), ids=" ".join)
def test_command_parses(argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"robofeedback {' '.join(argv)}: {capsys.readouterr().err}")


RESULTS = ROOT / "docs" / "results"


def test_the_results_section_is_the_committed_quick_suite_report():
    """The README's Results are the quick suite's report, kept in docs/results/quick with the results it was
    rendered from."""
    from robofeedback.bench.suite import README_END, README_START, readme_section

    section = README.split(README_START)[1].split(README_END)[0]
    assert section.strip() == readme_section(RESULTS / "quick" / "REPORT.md", ROOT).strip()


@pytest.mark.parametrize("suite", ["quick", "claims"])
def test_a_committed_report_is_what_its_committed_results_render(suite, tmp_path):
    """Rendering the results kept in docs/results/<suite> again gives the report kept beside them, with every plot
    it shows."""
    from robofeedback.bench.common import read_results
    from robofeedback.bench.suite import COMMAND, latest, report

    kept = RESULTS / suite
    for name in ("results.jsonl", COMMAND):
        (tmp_path / name).write_text((kept / name).read_text())
    again = report(latest(read_results(tmp_path)), tmp_path, json.loads((kept / "suite.json").read_text()))
    assert again.read_text() == (kept / "REPORT.md").read_text()
    shown = {png.name for png in tmp_path.glob("*.png")}
    assert shown and shown == {png.name for png in kept.glob("*.png")}
