"""``robofeedback hub push``: upload a folder robofeedback wrote, a reward model or a data set, to the Hugging Face Hub.

Pushing is optional, for users with network access; nothing else in robofeedback needs the Hub. The folder is checked
before anything is sent: which kinds robofeedback writes spans the rewards (the preference reward's format), the
methods (the CLIP reward's) and the data (a data set's ``robofeedback_dataset.json``), so the check lives here, in
the CLI, which may import from every layer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from robofeedback.data.dataset import META_FILE as DATASET_FILE
from robofeedback.methods.clip import model as clip_model
from robofeedback.rewards import preference

MODEL_FORMATS = (preference.PRETRAINED_FORMAT, clip_model.PRETRAINED_FORMAT)
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``hub`` command's arguments."""
    p = subparsers.add_parser(
        "hub",
        help="push a reward model or data set folder to the Hugging Face Hub",
        description="Share what robofeedback wrote on the Hugging Face Hub (needs network access, huggingface_hub "
        "and a token: HF_TOKEN or `hf auth login`). push uploads a reward-model folder (save_pretrained) or a data "
        "set folder, creating the repository if it does not exist; other folders are refused.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    push = actions.add_parser("push", help="upload a folder to a Hub repository")
    push.add_argument("folder", help="a reward-model or data set folder that robofeedback wrote")
    push.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the Hub repository")
    push.add_argument(
        "--type",
        choices=("model", "dataset"),
        default=None,
        help="the repository's type (default: the folder's kind); a type that does not fit the folder is refused",
    )
    push.add_argument(
        "--private", action="store_true", help="create the repository private (an existing one keeps its visibility)"
    )
    push.add_argument("--revision", default=None, help="the branch to push to, made from main if new (default main)")
    push.add_argument("--message", default=None, help="the commit message (default: 'Upload <kind> with robofeedback')")
    p.set_defaults(func=run)


def folder_kind(folder: str | Path) -> str:
    """``"model"`` for a reward-model folder robofeedback wrote (``config.json`` with one of its formats),
    ``"dataset"`` for a data set folder (``robofeedback_dataset.json``); any other folder is a ValueError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder at {folder}")
    if (folder / DATASET_FILE).is_file():
        return "dataset"
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict) and saved.get("format") in MODEL_FORMATS:
        return "model"
    raise ValueError(
        f"{folder} is not a folder robofeedback wrote, so it is not pushed: a reward model has a config.json with "
        f"format {' or '.join(MODEL_FORMATS)} (save_pretrained), a data set has {DATASET_FILE}"
    )


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    kind = folder_kind(folder)
    if args.type is not None and args.type != kind:
        raise ValueError(f"{folder} is a {kind} folder: --type {args.type} does not fit it")
    if not REPO_ID.fullmatch(args.repo):
        raise ValueError(f"--repo must be OWNER/NAME, got {args.repo!r}")
    url = push(folder, args.repo, kind, private=args.private, revision=args.revision, message=args.message)
    print(f"pushed {folder} to {url}")
    return 0


def push(
    folder: Path,
    repo: str,
    kind: str,
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
) -> str:
    """Upload ``folder`` to the Hub repository ``repo`` of type ``kind`` (created if missing) and return the
    commit's URL. Offline mode (HF_HUB_OFFLINE), no token, an unreachable Hub or a refusal is a one-line error."""
    try:
        import httpx2
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise ImportError("pushing to the Hub needs huggingface_hub: pip install 'robofeedback[share]'") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    if offline or constants.is_offline_mode():
        raise RuntimeError("HF_HUB_OFFLINE is set: pushing needs the network; unset it to push")
    token = huggingface_hub.get_token()
    if token is None:
        raise ValueError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo, repo_type=kind, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo, branch=revision, repo_type=kind, exist_ok=True)
        commit = api.upload_folder(
            folder_path=folder,
            repo_id=repo,
            repo_type=kind,
            revision=revision,
            commit_message=message or f"Upload {kind} with robofeedback",
        )
    except HfHubHTTPError as err:
        reason = err.server_message or _first_line(err)
        raise RuntimeError(
            f"the Hub at {endpoint} refused the push to {repo}: HTTP {err.response.status_code} ({reason})"
        ) from None
    except ValueError as err:
        raise ValueError(f"could not push to {repo}: {_first_line(err)}") from None
    except (httpx2.TransportError, OSError) as err:  # no route, refused, timed out
        raise RuntimeError(
            f"could not push to {repo} through the Hub at {endpoint} ({type(err).__name__}: {_first_line(err)}); "
            "pushing needs network access to the Hub"
        ) from None
    return commit.commit_url


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "no details"
