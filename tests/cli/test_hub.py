"""``robofeedback hub push``: folders robofeedback did not write are refused, offline or unreachable Hubs are one-line
errors, and a push to a local stand-in for the Hub creates the repository and commits every file."""

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import constants

from robofeedback import cli
from robofeedback.cli import hub
from robofeedback.methods.clip.model import PRETRAINED_FORMAT


@pytest.fixture
def main(monkeypatch):
    """``robofeedback``'s main with the hub command, online settings and a token; no request leaves the machine
    unless a test points HF_ENDPOINT somewhere."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    return cli.main


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "reward"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": PRETRAINED_FORMAT, "format_version": 1}))
    (folder / "README.md").write_text("# a reward\n")
    return folder


def free_port():
    """A local port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_folders_robofeedback_did_not_write_are_refused(main, tmp_path, model_folder, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert main(["hub", "push", str(tmp_path / "other"), "--repo", "owner/name"]) == 2
    assert "is not a folder robofeedback wrote, so it is not pushed" in capsys.readouterr().err
    assert main(["hub", "push", str(tmp_path / "missing"), "--repo", "owner/name"]) == 2
    assert "no folder at" in capsys.readouterr().err
    assert main(["hub", "push", str(model_folder), "--repo", "owner/name", "--type", "dataset"]) == 2
    assert "is a model folder: --type dataset does not fit it" in capsys.readouterr().err
    assert main(["hub", "push", str(model_folder), "--repo", "name-only"]) == 2
    assert "--repo must be OWNER/NAME" in capsys.readouterr().err


def test_the_folder_kind_is_read_from_the_folder(tmp_path, model_folder):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / hub.DATASET_FILE).write_text("{}")
    assert (hub.folder_kind(model_folder), hub.folder_kind(tmp_path / "data")) == ("model", "dataset")


def test_offline_mode_a_missing_token_and_no_network_are_one_line_errors(main, model_folder, monkeypatch, capsys):
    import huggingface_hub

    push = ["hub", "push", str(model_folder), "--repo", "owner/name"]
    assert main(push) == 2
    err = capsys.readouterr().err
    assert err.startswith("robofeedback hub: error: could not push to owner/name through the Hub at http://127.0.0.1:")
    assert "(ConnectError: " in err and "pushing needs network access to the Hub" in err and err.count("\n") == 1
    with monkeypatch.context() as offline:
        offline.setenv("HF_HUB_OFFLINE", "1")
        assert main(push) == 2
        offline_error = "HF_HUB_OFFLINE is set: pushing needs the network; unset it to push"
        assert capsys.readouterr().err == f"robofeedback hub: error: {offline_error}\n"
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(push) == 2
    assert "no Hugging Face token: set HF_TOKEN or log in with `hf auth login`" in capsys.readouterr().err


class FakeHub:
    """A local stand-in for the Hub's API that records each request and accepts every file as a regular (not LFS)
    upload, so a push is a repository creation and one commit; ``refuse`` answers every request with HTTP 401, as the
    Hub answers a bad token."""

    def __init__(self, refuse=False):
        self.requests: list[tuple[str, str, bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append(("GET", self.path, b""))
                self.reply({})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append(("POST", self.path, body))
                host = f"http://{self.headers['Host']}"
                if self.path == "/api/repos/create":
                    self.reply({"url": f"{host}/owner/name"})
                elif "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    self.reply(
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                    )
                elif "/commit/" in self.path:
                    self.reply({"commitUrl": f"{host}/owner/name/commit/{'a' * 40}", "commitOid": "a" * 40})
                else:
                    self.reply({})

            def reply(self, answer):
                status, answer = (
                    (401, {"error": "Invalid credentials in Authorization header"}) if refuse else (200, answer)
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def committed(self) -> dict:
        """The commit's summary and files (path -> content) from the commit request's NDJSON body."""
        (body,) = [body for method, path, body in self.requests if "/commit/" in path]
        lines = [json.loads(line) for line in body.splitlines()]
        files = {v["path"]: base64.b64decode(v["content"]) for k, v in (x.values() for x in lines) if k == "file"}
        return {"summary": lines[0]["value"]["summary"], "files": files}


@pytest.fixture
def fake_hub(monkeypatch):
    hubs = []

    def start(**kwargs):
        hubs.append(FakeHub(**kwargs))
        monkeypatch.setenv("HF_ENDPOINT", hubs[-1].url)
        return hubs[-1]

    yield start
    for fake in hubs:
        fake.httpd.shutdown()


def test_a_push_creates_the_repository_and_commits_every_file(main, model_folder, fake_hub, capsys):
    fake = fake_hub()
    assert main(["hub", "push", str(model_folder), "--repo", "owner/name", "--private"]) == 0
    assert f"pushed {model_folder} to {fake.url}/owner/name/commit/" in capsys.readouterr().out
    (create,) = [json.loads(body) for _, path, body in fake.requests if path == "/api/repos/create"]
    assert create == {"name": "name", "organization": "owner", "visibility": "private", "type": "model"}
    committed = fake.committed()
    assert committed["summary"] == "Upload model with robofeedback"
    assert committed["files"] == {p.name: p.read_bytes() for p in model_folder.iterdir()}


def test_a_refusal_by_the_hub_is_a_one_line_error(main, model_folder, fake_hub, capsys):
    fake = fake_hub(refuse=True)
    assert main(["hub", "push", str(model_folder), "--repo", "owner/name"]) == 2
    err = capsys.readouterr().err
    refusal = "HTTP 401 (Invalid credentials in Authorization header)"
    assert err == f"robofeedback hub: error: the Hub at {fake.url} refused the push to owner/name: {refusal}\n"


def test_a_data_set_goes_to_a_dataset_repository_on_the_branch_named(main, tmp_path, fake_hub):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / hub.DATASET_FILE).write_text("{}")
    fake = fake_hub()
    assert main(["hub", "push", str(folder), "--repo", "owner/name", "--revision", "v1", "--message", "labels"]) == 0
    paths = [path for _, path, _ in fake.requests]
    assert "/api/datasets/owner/name/branch/v1" in paths and "/api/datasets/owner/name/commit/v1" in paths
    assert fake.committed() == {"summary": "labels", "files": {hub.DATASET_FILE: b"{}"}}
