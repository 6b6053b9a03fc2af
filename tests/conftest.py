"""Shared test settings: small sizes, real simulators, nothing downloaded."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def tiny_train_config():
    """Training settings that exercise every callback in a few hundred steps."""
    return {
        "eval_every": 200,
        "eval_episodes": 2,
        "checkpoint_every": 200,
        "video_episodes": 1,
        "sac": {"learning_starts": 100, "batch_size": 32},
        "td3": {"learning_starts": 100, "batch_size": 32},
        "ppo": {"n_steps": 128, "batch_size": 32, "n_epochs": 1},
    }


def _postgres_bindir():
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on a Unix socket (Debian's postgresql package; run as its 'postgres' user when
    the tests run as root, since PostgreSQL refuses to)."""
    import shutil
    import socket
    import subprocess
    import tempfile
    from pathlib import Path

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package postgresql; make test installs it)")
    root = Path(tempfile.mkdtemp(prefix="robofeedback-pg-"))  # pytest's own tmp dirs are closed to other users
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user, user = ["runuser", "-u", "postgres", "--"], "postgres"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(f"{bindir}/initdb", "-D", str(data), "-U", user, "--auth=trust")
    options = f"-k {sockets} -p {port} -c listen_addresses=''"
    run(f"{bindir}/pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    yield f"postgresql+psycopg://{user}@/postgres?host={sockets}&port={port}"
    run(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)
