"""The registry of reward methods: what ``train``, the CLI and the bench suite know about a method, in one place.

Each method registers one :class:`Method`: its name, how to build the reward that ``train(reward=name)`` trains
on, the feedback it learns from, its ``train`` flags, its own commands, and how the bench suite runs and reports
it. Nothing else in robofeedback names a method: ``train`` resolves a name here, the CLI builds its choices and
flags from here, and the suite runs any registered method from a YAML entry.

Methods are found in two places: the packages under ``robofeedback/methods/`` (each exports ``METHOD``), and
the entry points of the group ``robofeedback.methods`` that other installed packages declare, each naming a
:class:`Method` object (``my_method = "my_package.method:METHOD"`` under
``[project.entry-points."robofeedback.methods"]``).

>>> from robofeedback import registry
>>> "preference" in registry.names()
True
>>> registry.get("preference").label
'PEBBLE preferences'
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENTRY_POINT_GROUP = "robofeedback.methods"
BUILTIN_PACKAGE = "robofeedback.methods"


@dataclass(frozen=True)
class Method:
    """One reward method as the rest of robofeedback sees it.

    - ``build(env, cfg, seed)``: the reward function ``train(reward=name)`` trains on, sized for ``env`` (the
      evaluation env) with ``cfg`` (the resolved :class:`~robofeedback.rl.train.TrainConfig`); a
      :class:`~robofeedback.protocols.LearnedReward` is learned from ``feedback``. None for methods that are not a
      ``train --reward`` choice (loops with commands of their own).
    - ``model``: the :class:`~robofeedback.protocols.LearnedReward` class of a learned method, whose
      :meth:`~robofeedback.protocols.LearnedReward.settings` the config's ``preference:`` section is checked against
      before anything is built; without ``build``, the reward is ``model.for_env(env, seed=seed, **cfg.preference)``
      (:meth:`reward_for`).
    - ``feedback``: the type ``train``'s ``feedback=`` must have when the reward is learned (a
      :class:`~robofeedback.protocols.FeedbackSource` subclass), or None when it learns from none.
    - ``configure(cfg)``: the method's settings laid under what the caller set (HERON's network and cadence).
    - ``add_arguments(parser)`` / ``from_args(args)``: its own flags of ``robofeedback train --reward name`` (the
      shared ones are the CLI's: who labels, the CLIP prompts, the feedback loop) and what the flags make:
      ``(reward, feedback, config overrides)``.
    - ``add_commands(subparsers)``: commands of its own (``robofeedback icpl``, ...).
    - ``bench(entry, folder, executor)``: runs one bench-suite entry of the method into ``folder``, returning the
      entry's result row; ``trains_policies``: whether its entries train policies (then they get the suite's
      ``train:`` settings under their ``config:``); ``report(rows)``: Markdown lines of the method's own section in
      the suite's report.

    >>> from robofeedback.rewards.base import EnvReward
    >>> method = Method(
    ...     "env_copy", "Env reward", "the env's own reward, as a method", build=lambda env, cfg, seed: EnvReward()
    ... )
    >>> method.build(None, None, 0), method.feedback, method.bench
    (<robofeedback.rewards.base.EnvReward object at 0x...>, None, None)
    >>> Method("env-copy", "Env reward", "a name that is no identifier")
    Traceback (most recent call last):
    ValueError: a method's name is a Python identifier (it names YAML entries and flags), got 'env-copy'

    :func:`register` adds a method (a package's entry point does it for an installed one).
    """

    name: str
    label: str
    summary: str
    build: Callable[..., Any] | None = None
    model: type | None = None
    feedback: type | None = None
    configure: Callable[[Any], Any] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    from_args: Callable[[argparse.Namespace], tuple[Any, Any, dict]] | None = None
    add_commands: Callable[[Any], None] | None = None
    bench: Callable[..., dict[str, Any]] | None = None
    trains_policies: bool = True
    report: Callable[[list[dict[str, Any]]], list[str]] | None = None

    def reward_for(self, env: Any, cfg: Any, seed: int) -> Any:
        """The reward ``train(reward=name)`` trains on: ``build``'s, or ``model`` sized for ``env`` with the config's
        ``preference:`` settings."""
        if self.build is not None:
            return self.build(env, cfg, seed)
        if self.model is None:
            raise ValueError(f"method {self.name!r} builds no reward for train(): it has neither build nor model")
        return self.model.for_env(env, **{"seed": seed, **cfg.preference})

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(
                f"a method's name is a Python identifier (it names YAML entries and flags), got {self.name!r}"
            )


_methods: dict[str, Method] = {}
_loaded = False


def register(method: Method) -> Method:
    """Add ``method``; a second method of the same name is an error (unless it is the same object)."""
    if not isinstance(method, Method):
        raise TypeError(f"register takes a robofeedback.registry.Method, got {type(method).__name__}")
    known = _methods.get(method.name)
    if known is not None and known is not method:
        raise ValueError(f"two methods are named {method.name!r}: {known.summary!r} and {method.summary!r}")
    _methods[method.name] = method
    return method


def _load() -> None:
    """Import the built-in method packages and the installed entry points, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__, BUILTIN_PACKAGE + "."):
        if info.ispkg:
            register(importlib.import_module(info.name).METHOD)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        method = entry.load()
        if not isinstance(method, Method):
            raise TypeError(f"entry point {entry.name} = {entry.value} must name a robofeedback.registry.Method")
        register(method)


def methods() -> dict[str, Method]:
    """Every registered method by name, built-in ones first."""
    _load()
    return dict(_methods)


def names(where: str | None = None) -> list[str]:
    """The registered methods' names; with ``where`` (``"train"`` or ``"bench"``), those usable there."""
    keep = {None: lambda m: True, "train": lambda m: m.build or m.model or m.from_args}
    keep["bench"] = lambda m: m.bench is not None
    return [name for name, method in methods().items() if keep[where](method)]


def get(name: str) -> Method:
    """The method called ``name``; an unknown name is a ValueError listing the known ones."""
    found = methods().get(name)
    if found is None:
        raise ValueError(f"unknown reward method {name!r}: the registered ones are {', '.join(methods())}")
    return found
