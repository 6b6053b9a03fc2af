"""Weights & Biases as one more output of SB3's logger, beside TensorBoard.

``train(..., wandb="PROJECT")`` wraps its training in :func:`wandb_logging`: it starts a W&B run whose config is
what ran (the env, reward, algorithm and seed, the resolved training config and the code's commit, as in
``summary.json``), gives the model SB3's own TensorBoard logger (the same ``tb/run_0`` folder) with a
:class:`WandbOutputFormat` added, so that W&B gets the scalars TensorBoard gets (``rollout/*``, ``train/*``,
``eval/*``, ``feedback/*``) at the same env steps, and finishes the run when training ends or fails. The run's id is
kept in the checkpoint, so a resumed training goes on in the same W&B run. ``mode="offline"`` (or
``WANDB_MODE=offline``) needs no network: the run is written under ``out/wandb`` (or ``$WANDB_DIR``) and uploaded
later with ``wandb sync``. wandb comes with the ``share`` extra and is imported only when a run is asked for.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import KVWriter
from stable_baselines3.common.utils import configure_logger

# The outputs whose exclusions W&B follows: TensorBoard's, so that both get the same scalars, and its own.
EXCLUDED_FOR = frozenset({"tensorboard", "wandb"})


class WandbOutputFormat(KVWriter):
    """Sends each dump of SB3's logger to a W&B run as one ``run.log(values, step=step)``: the numbers among the
    values (SB3 dumps at the env step count), less the keys excluded from TensorBoard or W&B."""

    def __init__(self, run: Any):
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        values = {
            key: value
            for key, value in key_values.items()
            if isinstance(value, numbers.Real) and not EXCLUDED_FOR & set(key_excluded.get(key) or ())
        }
        if values:
            self.run.log(values, step=int(step))

    def close(self) -> None:
        """Nothing to close: the run is finished by :func:`wandb_logging`, which started it."""


def init_kwargs(options: str | dict, out: Path, config: dict, resume_id: str | None = None) -> dict[str, Any]:
    """The keywords of ``wandb.init`` for a training run in ``out``: ``options`` (a project name, or keywords of
    ``wandb.init``: ``project``, ``entity``, ``name``, ``mode``, ...) over the defaults, which are the run named after
    ``out``, its files under ``out`` (or ``$WANDB_DIR``), ``config`` (made JSON as ``summary.json`` is; a ``config``
    in ``options`` is merged over it) and, given ``resume_id``, that run continued.

    >>> kwargs = init_kwargs("robot-arm", Path("runs/reach"), {"seed": 0}, resume_id="abc123")
    >>> kwargs["project"], kwargs["name"], kwargs["config"], kwargs["id"], kwargs["resume"]
    ('robot-arm', 'reach', {'seed': 0}, 'abc123', 'allow')
    >>> init_kwargs({"project": "p", "mode": "offline", "config": {"note": "x"}}, Path("r"), {"seed": 0})["config"]
    {'seed': 0, 'note': 'x'}
    """
    if isinstance(options, str):
        options = {"project": options}
    if not isinstance(options, dict):
        raise TypeError(f"wandb= is a project name or a dict of wandb.init keywords, got {type(options).__name__}")
    kwargs: dict[str, Any] = {"name": out.name, "dir": os.environ.get("WANDB_DIR") or str(out)}
    if resume_id is not None and "id" not in options:
        kwargs.update(id=resume_id, resume="allow")
    config = json.loads(json.dumps(config, default=str))
    return {**kwargs, **options, "config": {**config, **(options.get("config") or {})}}


@contextlib.contextmanager
def wandb_logging(
    options: str | dict | None,
    model: BaseAlgorithm,
    out: Path,
    config: dict,
    state: dict,
    tb_log_name: str = "run",
) -> Iterator[Any]:
    """For the ``with`` block, ``model`` logs to a W&B run (started with :func:`init_kwargs`) as well as to
    TensorBoard, in the folder ``learn(tb_log_name=tb_log_name, reset_num_timesteps=False)`` picks; yields the run,
    or None and changes nothing when ``options`` is None. The run continues the one whose id ``state`` (the
    checkpoint's) holds, records its own id there, and is finished at the end of the block, with exit code 1 when
    the block raises."""
    if options is None:
        yield None
        return
    try:
        import wandb
    except ImportError as e:
        raise ImportError("logging to Weights & Biases needs wandb: pip install 'robofeedback[share]'") from e
    run = wandb.init(**init_kwargs(options, out, config, state.get("wandb_run")))
    state["wandb_run"] = run.id
    writer = WandbOutputFormat(run)
    logger = configure_logger(model.verbose, model.tensorboard_log, tb_log_name, reset_num_timesteps=False)
    logger.output_formats.append(writer)
    model.set_logger(logger)
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    finally:
        logger.output_formats.remove(writer)  # the model outlives the run: later learning logs to TensorBoard only
    run.finish()
