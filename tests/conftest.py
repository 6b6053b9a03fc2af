"""Shared test settings: small sizes, real simulators, nothing downloaded."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class ChatServer:
    """A local OpenAI-compatible chat endpoint: answers image requests with an analysis, text requests with
    ``label_reply`` (or, given ``replies``, each request with the next of them); fails the first ``failures``
    requests with HTTP 500."""

    def __init__(self, label_reply="1", failures=0, replies=None):
        self.label_reply, self.failures, self.replies = label_reply, failures, list(replies or [])
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if server.failures > 0:
                    server.failures -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                content = body["messages"][-1]["content"]
                has_images = isinstance(content, list) and any(p["type"] == "image_url" for p in content)
                text = "Image 2 shows the drawer open further." if has_images else server.label_reply
                if server.replies:
                    text = server.replies.pop(0)
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    ],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def chat_server():
    servers = []

    def start(**kwargs):
        servers.append(ChatServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
