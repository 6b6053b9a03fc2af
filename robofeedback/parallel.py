"""Where independent jobs run: in this process, in local worker processes, or on a Ray cluster.

The benchmark suite runs its entries through an :class:`Executor`, and ICPL trains its candidate policies
through one, so the same choice (``make_executor("local", jobs=4)`` or ``make_executor("ray",
address="auto")``) applies to both. A job is a module-level function and a picklable argument; the function
seeds everything itself, so its result does not depend on which executor ran it.
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

EXECUTORS = ("local", "ray")


class Executor:
    """Runs ``fn(item)`` for each item; ``imap_unordered`` yields ``(index, result)`` as each job finishes."""

    def imap_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Every result, in the order of ``items``."""
        results = dict(self.imap_unordered(fn, items))
        return [results[i] for i in range(len(results))]

    def close(self) -> None:
        """Release what the executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """``jobs`` spawned worker processes on this machine; with ``jobs=1``, every job in this process, in order."""

    def __init__(self, jobs: int = 1):
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
        self.jobs = jobs

    def __repr__(self) -> str:
        return f"LocalExecutor(jobs={self.jobs})"

    def imap_unordered(self, fn, items):
        items = list(items)
        if self.jobs == 1:
            for i, item in enumerate(items):
                yield i, fn(item)
            return
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = {pool.submit(fn, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor(Executor):
    """Jobs as Ray tasks of ``cpus_per_job`` CPUs each: on the cluster at ``address`` (``"auto"``: the one this
    machine belongs to), or, with no address, on a Ray instance started here with ``num_cpus`` CPUs and shut
    down by :meth:`close`. Needs the ``ray`` extra (``pip install robofeedback[ray]``)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_job: float = 1.0):
        try:
            import ray
        except ImportError:
            raise ImportError("the ray executor needs Ray: pip install 'robofeedback[ray]'") from None
        if cpus_per_job <= 0:
            raise ValueError(f"cpus_per_job must be > 0, got {cpus_per_job}")
        self.ray, self.address = ray, address
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                logging_level="WARNING",
            )
        self._task = ray.remote(num_cpus=cpus_per_job, max_retries=0)(_call)

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def imap_unordered(self, fn, items):
        pending = {self._task.remote(fn, item): i for i, item in enumerate(items)}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), self.ray.get(done[0])

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


def make_executor(kind: str = "local", jobs: int = 1, address: str | None = None) -> Executor:
    """A :class:`LocalExecutor` with ``jobs`` processes, or a :class:`RayExecutor` on ``address`` (a local Ray
    instance with ``jobs`` CPUs when no address is given)."""
    if kind == "local":
        if address is not None:
            raise ValueError("--address is for the ray executor; the local one runs on this machine")
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(address=address, num_cpus=jobs if address is None else None)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")


def add_executor_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--executor`` and ``--address``, for a command whose ``what`` run as jobs."""
    parser.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help=f"where the {what} run: 'local' worker processes (default) or a Ray cluster (the ray extra)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="the Ray cluster's address ('auto': the one this machine is in); without it, --executor ray starts "
        "a Ray instance here with as many CPUs as the jobs",
    )
