"""What the benchmark modules share: reading results, and running entries in worker processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robofeedback.parallel import LocalExecutor


def read_results(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/results.jsonl`` (none when the bench has not run there yet)."""
    results = out / "results.jsonl"
    return [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []


def run_entries(
    worker: Callable, entries: list[dict[str, Any]], out: Path, jobs: int, describe: Callable[[dict[str, Any]], str]
) -> None:
    """Run ``worker((entry, out))`` for every entry in ``jobs`` spawned processes (in this one when ``jobs`` is 1),
    appending each finished row to ``out/results.jsonl`` at once (so an interrupted bench keeps what it finished)
    and printing ``describe(row)``."""
    results = out / "results.jsonl"
    with LocalExecutor(max(1, jobs)) as executor:
        jobs_done = executor.imap_unordered(worker, [(e, str(out)) for e in entries])
        for i, (_, row) in enumerate(jobs_done, start=1):
            with open(results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{i}/{len(entries)}] {describe(row)}", flush=True)
