"""Reward functions written as Python code by an LLM (or a person): checked, compiled restricted, run in a jail.

LLM text goes in, a :class:`CodeReward` comes out. Two layers stand between the code and the trainer:

1. **The first layer gives the LLM clear, early errors.** :func:`extract_code` takes the code block out of the
   answer; :func:`check_code` parses it and refuses what the allow-list does not cover (the function
   ``compute_reward(obs, action, info)`` must be defined; imports only of :data:`ALLOWED_MODULES`, and from them
   no file, memory or interpreter names and no other module; no names or attributes starting with ``_`` (but
   ``__init__`` methods) or ``func_``; no ``exec``, ``eval``, ``open``, ``getattr``, ``str.format`` and the
   like; no metaclasses, base classes or decorators; no ``while True`` without a ``break``). The code is compiled
   with RestrictedPython, whose guards check every attribute access, item access, iteration and write while it
   runs, and never hand the code a module other than the allowed ones, a frame, a module's globals or a piece of
   the import system.
2. **The jail is the boundary** (:mod:`robofeedback.rewards.jail`): the code runs in a worker process that has
   dropped its privileges and entered Landlock, a seccomp filter and resource limits before it compiled a line
   of it, with an empty environment and an empty working directory. It cannot open, write or list files, start
   processes, use the network, signal other processes or raise its limits, whatever it does.

The parent trusts nothing the worker sends: answers are frames of a fixed kind and bounded size (rewards and
components as float32, at most :data:`MAX_COMPONENTS` components with names of at most :data:`MAX_NAME`
characters, error messages of at most :data:`MAX_MESSAGE`), each read within a deadline; anything else kills the
worker and fails the candidate. Each call has a wall-clock limit, and each candidate a budget of reward-code
time in all (``budget``), so that slow code cannot stretch a training run without bound.

The code sees the observation, the action and, of the env's ``info``, only the keys its method allows
(``info_keys``; by default the named reward ``factors`` and ``agent_pos``); never the env's reward, success,
a simulator's own reward keys, the episode return, frames or terminal observations.

The function returns ``(reward, components)``: a float and a dict of named floats (arrays of N with
``batched``). The components go into each step's ``info["factors"]`` as ``reward/<name>``, so they are
logged and can be shown to the LLM in the next prompt. A NaN or infinite reward is an error.
"""

from __future__ import annotations

import ast
import copy
import errno
import importlib
import importlib.util
import json
import math
import os
import pickle
import re
import struct
import sys
import time
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from robofeedback.protocols import RewardFunction, Transitions
from robofeedback.rewards import jail

FUNCTION = "compute_reward"
# the modules reward code can import and hold; any other module (numpy's other submodules carry os, sys and
# builtins) is refused
ALLOWED_MODULES = frozenset({"math", "numpy", "numpy.linalg", "numpy.random", "numpy.fft"})
MAX_SOURCE = 64 * 1024  # characters of reward code
FORBIDDEN_CALLS = frozenset(
    """
    exec eval compile open input breakpoint help getattr setattr delattr hasattr globals locals vars dir type
    object super memoryview id exit quit
    """.split()
)
# attribute names refused on every object: numpy's ways to files, the OS and raw memory; str.format's attribute
# walk; the interpreter's frames and code objects
DENIED_ATTRIBUTES = frozenset(
    """
    load save savez savez_compressed loadtxt savetxt genfromtxt fromfile fromregex frombuffer memmap ctypeslib
    ctypes cffi lib f2py distutils testing DataSource os sys show_config show_runtime get_include tofile dump dumps data
    format format_map
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code f_back f_globals f_locals f_builtins
    f_code tb_frame tb_next co_code mro
    """.split()
)
ALLOWED_DUNDER_METHODS = frozenset({"__init__"})
# what reward code may read of a transition's info unless its method adds keys; what it may never read
INFO_KEYS = ("factors", "agent_pos")
NEVER_SHOWN = frozenset(
    """
    env_reward success is_success unscaled_reward episode frame frames terminal_observation final_observation
    final_info
    """.split()
)
# bounds on what a worker may send back
MAX_COMPONENTS = 32
MAX_NAME = 48
MAX_MESSAGE = 2000
_NAME = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_NAME}}}\Z")
_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
STAGES = ("extract", "check", "compile", "run", "jail")
# what stopped a candidate: the first layer, the jail's mechanisms, its limits, or the parent's checks
LAYERS = (
    "ast check",
    "RestrictedPython",
    "identity",
    "landlock",
    "seccomp",
    "rlimit",
    "recursion limit",
    "wall clock",
    "budget",
    "protocol",
    "crash",
)


def check_info_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """``keys`` as a tuple, once checked to be names of info keys that reward code may read."""
    keys = tuple(keys)
    bad = [k for k in keys if not isinstance(k, str) or k in NEVER_SHOWN]
    if bad:
        raise ValueError(f"reward code may read any info key but {sorted(NEVER_SHOWN)}; refused: {bad}")
    return keys


class RewardCodeError(ValueError):
    """Reward code that was refused or failed: ``stage`` says where (extract, check, compile, run, jail) and
    ``layer`` what stopped it (one of :data:`LAYERS`; None when the code failed by itself)."""

    def __init__(self, stage: str, message: str, layer: str | None = None):
        where = f"{stage} error" + (f" (stopped by {layer})" if layer else "")
        super().__init__(f"reward code {where}: {message}")
        self.stage, self.message, self.layer = stage, message, layer


class Refused(Exception):
    """An operation the first layer's run-time guards refuse."""


def extract_code(text: str) -> str:
    """The code block of an LLM answer that defines ``compute_reward`` (the last one, if several do); the whole
    text when it has no fenced block but parses as Python."""
    blocks = _BLOCK.findall(text or "")
    with_function = [b for b in blocks if f"def {FUNCTION}" in b]
    if with_function:
        return with_function[-1].strip() + "\n"
    if blocks:
        raise RewardCodeError("extract", f"no code block defines {FUNCTION}(obs, action, info)")
    try:
        ast.parse(text or "")
    except SyntaxError:
        raise RewardCodeError("extract", "the answer holds no ```python code block``` and is not Python") from None
    if f"def {FUNCTION}" not in (text or ""):
        raise RewardCodeError("extract", f"the answer does not define {FUNCTION}(obs, action, info)")
    return text.strip() + "\n"


def check_code(source: str) -> ast.Module:
    """Parse ``source`` and refuse what the allow-list does not cover; returns the syntax tree."""
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        size = f"{len(source)} characters" if isinstance(source, str) else type(source).__name__
        raise RewardCodeError(
            "check", f"reward code is text of at most {MAX_SOURCE} characters, got {size}", "ast check"
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise RewardCodeError("check", f"syntax error on line {e.lineno}: {e.msg}", "ast check") from None
    except (RecursionError, MemoryError, ValueError) as e:  # nesting the parser cannot follow, NUL characters
        raise RewardCodeError("check", f"the code cannot be parsed ({type(e).__name__}: {e})", "ast check") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == FUNCTION]
    if not functions:
        raise RewardCodeError("check", f"no top-level function {FUNCTION}(obs, action, info)", "ast check")
    args = [a.arg for a in functions[-1].args.args]
    if args != ["obs", "action", "info"]:
        raise RewardCodeError(
            "check", f"{FUNCTION} must take (obs, action, info), got ({', '.join(args)})", "ast check"
        )
    try:
        for node in ast.walk(tree):
            problem = _refusal(node)
            if problem:
                raise RewardCodeError("check", f"line {getattr(node, 'lineno', '?')}: {problem}", "ast check")
    except RecursionError:
        raise RewardCodeError("check", "the code is nested too deeply", "ast check") from None
    return tree


def _refusal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name not in ALLOWED_MODULES]
        return f"import of {bad} (only {', '.join(sorted(ALLOWED_MODULES))})" if bad else None
    if isinstance(node, ast.ImportFrom):
        if node.module not in ALLOWED_MODULES or node.level != 0:
            return f"import from {node.module} (only {', '.join(sorted(ALLOWED_MODULES))})"
        for alias in node.names:
            problem = _imported_name_refusal(node.module, alias.name)
            if problem:
                return problem
        return None
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"the name {node.id} is not allowed"
    if isinstance(node, ast.Attribute) and _denied_attribute(node.attr):
        hint = " (use an f-string)" if node.attr in ("format", "format_map") else ""
        return f"the attribute .{node.attr} is not allowed{hint}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
        return f"calling {node.func.id}() is not allowed"
    if isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
        return f"the name {node.id} is not allowed"
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return "global and nonlocal are not allowed"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.decorator_list:
        return f"decorators are not allowed (on {node.name})"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_"):
        if node.name not in ALLOWED_DUNDER_METHODS:
            return f"the method name {node.name} is not allowed (of the underscore names, only __init__)"
    if isinstance(node, ast.ClassDef):
        if node.keywords:
            return f"class {node.name}: metaclasses and class keywords are not allowed"
        if node.bases:
            return f"class {node.name}: base classes are not allowed (write plain classes)"
    if isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom)):
        return "generators and async code are not allowed in reward code"
    if isinstance(node, ast.AugAssign) and isinstance(node.target, (ast.Attribute, ast.Subscript)):
        if any(isinstance(n, ast.Call) for n in ast.walk(node.target)):
            return "augmented assignment to an item or attribute whose target calls something (write x = x + v)"
    if isinstance(node, ast.While) and _always_true(node.test):
        if not any(isinstance(n, ast.Break) for n in ast.walk(node)):
            return "a `while True` loop without a break never ends"
    return None


def _denied_attribute(name: str) -> bool:
    # func_* are the function internals of Cython's functions (func_globals, func_code, ...)
    return name.startswith(("_", "func_")) or name in DENIED_ATTRIBUTES


def _imported_name_refusal(module: str, name: str) -> str | None:
    if name == "*":
        return f"from {module} import * is not allowed (name what you use)"
    if _denied_attribute(name):
        return f"from {module} import {name} is not allowed"
    if f"{module}.{name}" in ALLOWED_MODULES:
        return None
    namespace = importlib.import_module(module).__dict__  # an allowed module: math or numpy's
    if name not in namespace:  # not there, or one of numpy's lazily imported submodules
        return f"from {module} import {name}: no such name for reward code"
    if isinstance(namespace[name], types.ModuleType):
        return f"from {module} import {name} is not allowed (a module reward code cannot use)"
    return None


def _always_true(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value)


# -- restricted compilation and execution (inside the worker) -----------------------------------------


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    if not isinstance(name, str) or _denied_attribute(name):
        raise Refused(f"the attribute {name!r} is not allowed in reward code")
    if isinstance(obj, types.ModuleType):
        if obj.__name__ not in ALLOWED_MODULES:
            raise Refused(f"the module {obj.__name__} is not allowed in reward code")
        if name not in obj.__dict__ and f"{obj.__name__}.{name}" not in ALLOWED_MODULES:  # no lazy imports
            if default:
                return default[0]
            raise Refused(f"{obj.__name__}.{name} is not available to reward code")
    return _checked(getattr(obj, name, *default))


def _guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and key.startswith("__"):
        raise Refused(f"the item {key!r} is not allowed in reward code")
    return _checked(obj[key])


_INTERPRETER_TYPES = (types.FrameType, types.TracebackType, types.CodeType, types.GeneratorType)


def _checked(value: Any) -> Any:
    """``value`` if reward code may hold it: not a module other than the allowed ones, not a frame, traceback, code
    object or generator, not a module's globals, not a piece of the import system."""
    if isinstance(value, types.ModuleType) and value.__name__ not in ALLOWED_MODULES:
        raise Refused(f"the module {value.__name__} is not allowed in reward code")
    if isinstance(value, _INTERPRETER_TYPES):
        raise Refused(f"{type(value).__name__} objects are not allowed in reward code")
    if type(value) is dict and ("__builtins__" in value or "__loader__" in value):
        raise Refused("a module's globals are not allowed in reward code")
    if (type(value).__module__ or "").startswith(("importlib", "_frozen_importlib")):
        raise Refused("the import system is not allowed in reward code")
    return value


class _Scope:
    """The classes one piece of reward code defined: their instances may have attributes set."""

    def __init__(self):
        self.classes: set[type] = set()

    def make_class(self, name: str, bases: tuple, namespace: dict) -> type:
        if bases:
            raise Refused("base classes are not allowed in reward code")
        for key in namespace:
            if key.startswith("_") and key not in ALLOWED_DUNDER_METHODS | {"__module__", "__qualname__"}:
                raise Refused(f"the class member {key} is not allowed in reward code")
        cls = type(name, (), dict(namespace))
        self.classes.add(cls)
        return cls

    def write(self, obj: Any) -> Any:
        if isinstance(obj, (dict, list, np.ndarray)) or type(obj) in self.classes:
            return obj
        raise Refused(
            f"reward code may only assign into dicts, lists, arrays and its own objects, not {type(obj).__name__}"
        )


def _guarded_import(name: str, globals=None, locals=None, fromlist=(), level=0):
    # Reward code's own imports were checked by check_code; numpy's C code imports its own submodules through the
    # calling frame's __import__, and those were all loaded before the code was compiled.
    if level != 0:
        raise Refused("relative imports are not allowed in reward code")
    if name in ALLOWED_MODULES:
        for item in fromlist or ():
            problem = _imported_name_refusal(name, item)
            if problem:
                raise Refused(problem)
    if name not in sys.modules:
        raise Refused(f"reward code may import only {sorted(ALLOWED_MODULES)}, not {name!r}")
    return sys.modules[name] if fromlist else sys.modules[name.partition(".")[0]]


class _AugmentedAssignments(ast.NodeTransformer):
    """``a.b += v`` and ``a[i] += v`` as ``a.b = a.b + v`` and ``a[i] = a[i] + v``, which RestrictedPython's guards
    allow (it refuses augmented assignment to attributes and items); check_code has made sure the target calls
    nothing, so evaluating it twice changes nothing."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if not isinstance(node.target, (ast.Attribute, ast.Subscript)):
            return node
        current = copy.deepcopy(node.target)
        current.ctx = ast.Load()
        assign = ast.Assign(targets=[node.target], value=ast.BinOp(left=current, op=node.op, right=node.value))
        return ast.fix_missing_locations(ast.copy_location(assign, node))


def _inplace(op: str, x: Any, y: Any) -> Any:
    ops = {
        "+=": lambda a, b: a + b,
        "-=": lambda a, b: a - b,
        "*=": lambda a, b: a * b,
        "/=": lambda a, b: a / b,
        "//=": lambda a, b: a // b,
        "%=": lambda a, b: a % b,
        "**=": lambda a, b: a**b,
        "@=": lambda a, b: a @ b,
    }
    if op not in ops:
        raise Refused(f"the operator {op} is not allowed in reward code")
    return ops[op](x, y)


def compile_reward(source: str):
    """``compute_reward`` from ``source``, checked and compiled with RestrictedPython. It runs in this process:
    only the jailed worker of :class:`CodeReward` calls it on code it does not trust."""
    from RestrictedPython import PrintCollector, compile_restricted, safe_builtins
    from RestrictedPython.Eval import default_guarded_getiter
    from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

    tree = _AugmentedAssignments().visit(check_code(source))
    try:
        with warnings.catch_warnings():  # RestrictedPython warns that print()'s output is never read: it is not
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile_restricted(tree, filename="<reward code>", mode="exec")
    except SyntaxError as e:  # RestrictedPython lists its refusals as a tuple of messages
        problems = e.args[0] if e.args and isinstance(e.args[0], (tuple, list)) else [str(e)]
        raise RewardCodeError("compile", "; ".join(str(p) for p in problems), "RestrictedPython") from None
    scope_classes = _Scope()
    builtins = {k: v for k, v in safe_builtins.items() if k not in FORBIDDEN_CALLS and not k.startswith("_")}
    builtins.update(
        __import__=_guarded_import,
        __build_class__=safe_builtins["__build_class__"],
        min=min,
        max=max,
        sum=sum,
        abs=abs,
        all=all,
        any=any,
        enumerate=enumerate,
        zip=zip,
        map=map,
        filter=filter,
        sorted=sorted,
        reversed=reversed,
        list=list,
        tuple=tuple,
        dict=dict,
        set=set,
        frozenset=frozenset,
        format=format,
    )
    scope: dict[str, Any] = {
        "__builtins__": builtins,
        "__name__": "reward_code",
        "__metaclass__": scope_classes.make_class,
        "_getattr_": _guarded_getattr,
        "_getitem_": _guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": scope_classes.write,
        "_inplacevar_": _inplace,
        "_print_": PrintCollector,  # print() collects into a local variable that goes nowhere
        "_apply_": lambda f, *a, **kw: f(*a, **kw),
        "math": math,
        "np": np,
        "numpy": np,
    }
    try:
        exec(code, scope)  # restricted bytecode, guarded scope
    except Refused as e:
        raise RewardCodeError("compile", str(e), "RestrictedPython") from None
    except Exception as e:  # an error at the code's top level (before any call)
        raise RewardCodeError("compile", f"{type(e).__name__}: {e}") from None
    return scope[FUNCTION]


def compile_unchecked(source: str):
    """``compute_reward`` from ``source`` as plain Python, with no first layer at all: for the tests that show
    the jail holds by itself. Never used on code from outside."""
    scope: dict[str, Any] = {"__name__": "reward_code"}
    exec(compile(source, "<reward code>", "exec"), scope)
    return scope[FUNCTION]


def call_reward(fn, obs: Any, action: np.ndarray, info: Any, batched: bool, n: int) -> tuple[np.ndarray, dict]:
    """Call a compiled reward function and check what it returns: rewards ``(n,)`` float32 and at most
    :data:`MAX_COMPONENTS` components ``{name: (n,)}`` float32 with short names."""
    results = [fn(obs, action, info)] if batched else [fn(obs[i], action[i], info[i]) for i in range(n)]
    rewards, components = [], {}
    for out in results:
        if not (type(out) is tuple and len(out) == 2 and type(out[1]) is dict):
            raise RewardCodeError(
                "run", f"{FUNCTION} must return (reward, dict of components), got {type(out).__name__}", "protocol"
            )
        rewards.append(_floats(out[0], "the reward"))
        if len(out[1]) > MAX_COMPONENTS:
            raise RewardCodeError("run", f"{len(out[1])} components (at most {MAX_COMPONENTS})", "protocol")
        for name, value in out[1].items():
            if type(name) is not str or not _NAME.match(name):
                shown = repr(name)[:60] if type(name) is str else type(name).__name__
                raise RewardCodeError(
                    "run",
                    f"component names are 1 to {MAX_NAME} letters, digits, '_', '.' or '-', got {shown}",
                    "protocol",
                )
            components.setdefault(name, []).append(_floats(value, f"component {name!r}"))
    reward = np.concatenate(rewards)
    if len(reward) != n:
        raise RewardCodeError("run", f"{FUNCTION} returned {len(reward)} rewards for {n} transitions")
    if not np.isfinite(reward).all():
        raise RewardCodeError("run", f"{FUNCTION} returned a non-finite reward (NaN or inf)")
    parts = {name: np.concatenate(v) for name, v in components.items()}
    for name, value in parts.items():
        if len(value) != n:
            raise RewardCodeError("run", f"component {name!r} has {len(value)} values for {n} transitions")
    return reward, parts


_NUMBERS = (bool, int, float, np.number, np.bool_)


def _floats(value: Any, what: str) -> np.ndarray:
    if isinstance(value, _NUMBERS):
        return np.asarray([value], dtype=np.float32)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.astype(np.float32).reshape(-1)
    if isinstance(value, (list, tuple)) and all(isinstance(v, _NUMBERS) for v in value):
        return np.asarray(value, dtype=np.float32).reshape(-1)
    raise RewardCodeError(
        "run", f"{what} must be a number or an array of numbers, got {type(value).__name__}", "protocol"
    )


# -- what travels between the worker and the parent ----------------------------------------------------------------


def encode_result(reward: np.ndarray, parts: dict[str, np.ndarray]) -> bytes:
    """The worker's answer to a call: ``<II`` (n, k), the n rewards, k names (a length byte, ASCII), k x n values;
    all numbers float32."""
    names = [name.encode("ascii") for name in parts]
    values = [np.asarray(v, dtype="<f4") for v in parts.values()]
    return b"".join(
        [struct.pack("<II", len(reward), len(names)), np.asarray(reward, dtype="<f4").tobytes()]
        + [bytes([len(name)]) + name for name in names]
        + [v.tobytes() for v in values]
    )


def result_size_limit(n: int) -> int:
    """The largest answer a worker may send for ``n`` transitions."""
    return 8 + 4 * n + MAX_COMPONENTS * (1 + MAX_NAME + 4 * n)


def decode_result(body: bytes, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read an answer of :func:`encode_result` for ``n`` transitions, checking every bound; raises
    :class:`jail.ProtocolError` on anything else."""
    if len(body) < 8:
        raise jail.ProtocolError("a result shorter than its header")
    count, k = struct.unpack_from("<II", body)
    if count != n:
        raise jail.ProtocolError(f"a result for {count} transitions, {n} were asked for")
    if k > MAX_COMPONENTS:
        raise jail.ProtocolError(f"a result with {k} components (at most {MAX_COMPONENTS})")
    offset = 8 + 4 * n
    if len(body) < offset:
        raise jail.ProtocolError("a truncated result")
    reward = np.frombuffer(body, dtype="<f4", count=n, offset=8).astype(np.float32)
    names = []
    for _ in range(k):
        if offset >= len(body):
            raise jail.ProtocolError("a truncated result")
        length = body[offset]
        name = body[offset + 1 : offset + 1 + length]
        offset += 1 + length
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            raise jail.ProtocolError("a component name that is not ASCII") from None
        if length != len(name) or not _NAME.match(text) or text in names:
            raise jail.ProtocolError(f"a bad component name {text[:MAX_NAME]!r}")
        names.append(text)
    if len(body) != offset + 4 * n * k:
        raise jail.ProtocolError(f"a result of {len(body)} bytes, {offset + 4 * n * k} expected")
    values = np.frombuffer(body, dtype="<f4", count=n * k, offset=offset).astype(np.float32).reshape(k, n)
    if not np.isfinite(reward).all():
        raise jail.ProtocolError("non-finite rewards")
    return reward, dict(zip(names, values, strict=True))


def encode_error(stage: str, message: str, layer: str | None = None) -> bytes:
    """An error answer: stage, layer and message, NUL-separated, the message cut to :data:`MAX_MESSAGE`."""
    return b"\0".join([stage.encode(), (layer or "").encode(), message[:MAX_MESSAGE].encode("utf-8", "replace")])


def decode_error(body: bytes) -> RewardCodeError:
    """The :class:`RewardCodeError` an error answer stands for; raises :class:`jail.ProtocolError` if malformed."""
    parts = body.split(b"\0", 2)
    if len(parts) != 3:
        raise jail.ProtocolError("a malformed error answer")
    stage, layer = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
    if stage not in STAGES or (layer and layer not in LAYERS):
        raise jail.ProtocolError(f"an error answer with an unknown stage or layer {stage[:16]!r} / {layer[:16]!r}")
    message = parts[2].decode("utf-8", "replace")
    message = "".join(c if c.isprintable() or c == "\n" else "?" for c in message)[:MAX_MESSAGE]
    return RewardCodeError(stage, message, layer or None)


_ERROR_LIMIT = 4 * MAX_MESSAGE + 64  # stage, layer and a message of MAX_MESSAGE characters in UTF-8
_JAIL_LIMIT = 256


# -- the worker ---------------------------------------------------------------------------------------------------

WARM_UP = """
import numpy as np
from math import sqrt, exp

class Terms:
    def __init__(self, scale):
        self.scale = scale

    def apply(self, x):
        return self.scale * x

def compute_reward(obs, action, info):
    x = np.asarray(obs, dtype=float)
    terms = Terms(0.5)
    parts = [float(v) for v in x.ravel()[:3]]
    total = 0.0
    for i, v in enumerate(parts):
        total += v * (i + 1)
    summary = f"{x.sum():.3f} {x.mean():.3f} {x.std():.3f} {x.max()} {x.min()} {x.any()} {x.all()} {str(x)} {repr(x)}"
    extra = {k: v for k, v in zip(["a", "b"], [1.0, 2.0])}
    near = float(np.exp(-np.linalg.norm(x) / 0.05)) + sqrt(4.0) + exp(0.0) + terms.apply(total)
    near += float(np.clip(np.tanh(x), -1, 1).sum() + np.argmax(x) + np.median(x) + np.percentile(x, 50))
    near += float(np.var(x) + np.cumsum(x)[-1] + np.where(x > 0, x, 0).sum() + np.dot(x.ravel(), x.ravel()))
    near += float(np.round(np.abs(x), 2).sum() + np.square(x).sum() + np.sort(x.ravel())[0] + len(np.unique(x)))
    near += float(np.einsum("i,i->", x.ravel(), x.ravel()) + np.isclose(x, x).all() + np.nanmean(x))
    near += float(np.random.default_rng(0).normal() + np.fft.fft(x.ravel()).real.sum())
    near += float(np.cross([1, 0, 0], [0, 1, 0])[2])
    near += float(np.interp(0.5, [0, 1], [0, 1]) + np.histogram(x.ravel(), bins=3)[0].sum() + np.average(x))
    near += float(np.linalg.inv(np.eye(3)).trace() + np.arctan2(1.0, 1.0) + np.hypot(3, 4) + np.sign(-1) + len(summary))
    print(summary, extra)
    try:
        np.asarray(obs)[999]
    except IndexError:
        pass
    return min(max(near, -1e6), 1e6), {"near": near, "total": total}
"""


def _warm_up() -> None:
    """Load everything ordinary reward code reaches for, before the jail closes the file system: numpy's lazily
    imported submodules, RestrictedPython's compiler and guards, the formatting of arrays."""
    jail.prepare()
    warnings.simplefilter("ignore")
    np.random.default_rng()  # seeds from the OS (getrandom), loading what that needs
    fn = compile_reward(WARM_UP)
    obs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 6)
    encode_result(*call_reward(fn, obs, np.zeros((2, 2), np.float32), [{}, {}], False, 2))
    for bad in ("def compute_reward(obs, action, info):\n    return obs.__class__, {}\n", "x = ("):
        try:
            compile_reward(bad)
        except RewardCodeError:
            pass


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _os_error_layer(e: OSError, applied: list[str], dropped_root: bool) -> str | None:
    if e.errno == errno.EPERM and "seccomp" in applied:  # the system-call filter's answer
        return "seccomp"
    if e.errno in (errno.EACCES, errno.ENOENT) and dropped_root:  # outside its root, or nobody's permissions
        return "identity"
    if e.errno == errno.EACCES and "landlock" in applied:
        return "landlock"
    return None


def _run_error(e: BaseException, memory_mb: int, applied: list[str], dropped_root: bool) -> tuple[str, str | None]:
    """The message and the stopping layer for an exception raised by reward code."""
    if isinstance(e, RewardCodeError):
        return e.message, e.layer
    if isinstance(e, Refused):
        return str(e), "RestrictedPython"
    if isinstance(e, MemoryError):
        return f"ran out of its {memory_mb} MB memory limit", "rlimit"
    if isinstance(e, RecursionError):
        return "recursion too deep", "recursion limit"
    if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
        return f"{type(e).__name__}: {e} (its limit of {jail.OPEN_FILES} open files)", "rlimit"
    if isinstance(e, ValueError) and "not allowed to raise maximum limit" in str(e) and "seccomp" in applied:
        return f"ValueError: {e} (setrlimit refused by the jail: seccomp)", "seccomp"  # Python's words for EPERM
    if isinstance(e, OSError):
        layer = _os_error_layer(e, applied, dropped_root)
        blocked = f" (blocked by the jail: {layer})" if layer else ""
        return f"{type(e).__name__}: {e}{blocked}", layer
    if isinstance(e, RuntimeError) and "can't start new thread" in str(e):
        return f"RuntimeError: {e} (blocked by the jail: seccomp)", "seccomp" if "seccomp" in applied else None
    return f"{type(e).__name__}: {e}", None


def serve(fd: int) -> None:
    """The worker (started by :class:`CodeReward` through :class:`jail.Worker`): load what reward code needs, read
    the code and its limits, enter the jail, compile, then answer calls until told to stop."""
    _warm_up()
    kind, body = jail.receive_frame(fd)
    setup = json.loads(body)
    memory_mb = int(setup["memory_mb"])
    limit = _virtual_memory_bytes() + memory_mb * 1024 * 1024
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):  # stderr was a pipe to the parent, for errors before this point
        os.dup2(null, target)
    os.close(null)
    if fd != jail.SOCKET_FD:  # the worker keeps only its socket, at a fixed number
        os.dup2(fd, jail.SOCKET_FD)
        os.close(fd)
        fd = jail.SOCKET_FD
    os.closerange(fd + 1, 1 << 16)
    sys.setrecursionlimit(2000)
    dropped_root = os.geteuid() == 0 and "identity" not in setup["skip"]
    try:
        applied = jail.enter(limit, int(setup["cpu_seconds"]), skip=setup["skip"])
    except Exception as e:  # no untrusted code has run yet: say what failed, and end
        layer = e.mechanism if isinstance(e, jail.JailError) else None
        jail.send_frame(fd, b"ERR ", encode_error("jail", f"{type(e).__name__}: {e}", layer))
        return
    jail.send_frame(fd, b"JAIL", ",".join(applied).encode())
    try:
        fn = compile_reward(setup["source"]) if setup["first_layer"] else compile_unchecked(setup["source"])
    except RewardCodeError as e:
        jail.send_frame(fd, b"ERR ", encode_error(e.stage, e.message, e.layer))
        return
    except BaseException as e:  # the unchecked mode's top level
        message, layer = _run_error(e, memory_mb, applied, dropped_root)
        jail.send_frame(fd, b"ERR ", encode_error("compile", message, layer))
        return
    jail.send_frame(fd, b"REDY")
    while True:
        kind, body = jail.receive_frame(fd)
        if kind != b"CALL":
            return
        obs, action, info, batched, n = pickle.loads(body)
        try:
            answer = b"RSLT", encode_result(*call_reward(fn, obs, action, info, batched, n))
        except BaseException as e:  # the candidate's own bug, or what stopped it
            message, layer = _run_error(e, memory_mb, applied, dropped_root)
            answer = b"ERR ", encode_error("run", message, layer)
        jail.send_frame(fd, *answer)


# -- the parent's side --------------------------------------------------------------------------------------------


class CodeReward(RewardFunction):
    """A reward function from code (LLM-written or not), run in a jailed worker process.

    ``timeout`` is the wall-clock limit of one call (a batch of transitions), ``budget`` the reward-code time a
    candidate may use in all (calls and start-up, wall clock; its CPU time is held to the same by the kernel),
    ``memory_mb`` the memory the worker may allocate beyond what it starts with. ``batched`` code takes arrays
    of N transitions (``obs`` (N, D), ``action`` (N, A), ``info`` a list of N dicts) at once. ``info_keys`` are
    the keys of each transition's info the code may read (:data:`INFO_KEYS` by default; never one of
    :data:`NEVER_SHOWN`). ``allow_missing`` names jail mechanisms this machine lacks that the user accepts to run
    without (see :func:`jail.require`). Construction compiles the code in the worker, so refused or broken code
    raises :class:`RewardCodeError` right away. After an error the worker is gone and every later call raises
    that error again. ``_first_layer=False`` (no checks, plain Python) and ``_skip`` (jail mechanisms left out)
    exist for the tests that show each part of the jail holds by itself; nothing else sets them.
    """

    def __init__(
        self,
        source: str,
        batched: bool = False,
        timeout: float = 2.0,
        memory_mb: int = 512,
        budget: float = 120.0,
        info_keys: Iterable[str] = INFO_KEYS,
        allow_missing: Iterable[str] | None = None,
        _first_layer: bool = True,
        _skip: Iterable[str] = (),
    ):
        if timeout <= 0 or memory_mb <= 0 or budget <= 0:
            raise ValueError(f"timeout, memory_mb and budget must be > 0, got {timeout}, {memory_mb}, {budget}")
        if importlib.util.find_spec("RestrictedPython") is None:
            raise ImportError("reward code runs under RestrictedPython: pip install 'robofeedback[llm]'")
        self.info_keys = check_info_keys(info_keys)
        if _first_layer:
            check_code(source)
        try:
            self.skip = sorted(jail.require(allow_missing) | set(_skip))
        except (jail.JailError, ValueError) as e:
            raise RewardCodeError("jail", str(e), getattr(e, "mechanism", None)) from None
        self.source, self.batched, self.first_layer = source, bool(batched), bool(_first_layer)
        self.timeout, self.memory_mb, self.budget = float(timeout), int(memory_mb), float(budget)
        self.error: RewardCodeError | None = None
        self.last_components: dict[str, np.ndarray] = {}
        self.applied: list[str] = []
        self.used = 0.0
        self._worker: jail.Worker | None = None
        self._start()

    def _start(self) -> None:
        started = time.monotonic()
        self._worker = jail.Worker("from robofeedback.rewards.code import serve; serve({fd})")
        setup = {
            "source": self.source,
            "memory_mb": self.memory_mb,
            "cpu_seconds": max(1, math.ceil(self.budget - self.used)),
            "skip": self.skip,
            "first_layer": self.first_layer,
        }
        try:  # starting Python and numpy takes a moment on a loaded machine
            body = self._exchange(b"SETP", json.dumps(setup).encode(), {b"JAIL": _JAIL_LIMIT}, max(self.timeout, 30.0))
            applied = body.decode("ascii", "replace").split(",")
            self._worker.forget_directory()  # its root or working directory lives on, unlinked, until it ends
            expected = [m for m in ("identity", "rlimits", "landlock", "seccomp") if m not in self.skip]
            if applied != expected:
                self._fail("jail", f"the worker reports the jail {applied}, expected {expected}", "protocol")
            self.applied = applied
            self._expect({b"REDY": 0}, max(self.timeout, 30.0) - (time.monotonic() - started))
        finally:
            self.used += time.monotonic() - started

    def _exchange(self, kind: bytes, body: bytes, limits: dict[bytes, int], timeout: float) -> bytes:
        """Send a request and read its answer (see :meth:`_expect`)."""
        try:
            self._worker.send(kind, body, min(timeout, self.budget - self.used))
        except (TimeoutError, EOFError) as e:
            self._fail("run", str(e), "wall clock" if isinstance(e, TimeoutError) else "crash")
        return self._expect(limits, timeout)

    def _expect(self, limits: dict[bytes, int], timeout: float) -> bytes:
        """The body of the worker's next answer, of a kind in ``limits`` (or an error answer), within ``timeout``
        seconds and what is left of the budget; an error answer, a breach, a death or the time running out fails
        the candidate."""
        worker, left = self._worker, self.budget - self.used
        try:
            kind, body = worker.read({**limits, b"ERR ": _ERROR_LIMIT}, min(timeout, left))
        except TimeoutError:
            if left < timeout:
                self._fail("run", f"used up its budget of {self.budget:g} s of reward-code time", "budget")
            self._fail(
                "run", f"no answer within {timeout:g} s (an endless loop?); the worker was stopped", "wall clock"
            )
        except jail.ProtocolError as e:
            self._breach(e)
        except EOFError:
            self._fail("run", f"the worker process died: {worker.died_how()}", _death_layer(worker))
        if kind == b"ERR ":
            try:
                error = decode_error(body)
            except jail.ProtocolError as e:
                self._breach(e)
            self._fail(error.stage, error.message, error.layer)
        return body

    def _breach(self, e: jail.ProtocolError):
        self._fail("run", f"the worker sent {e}; it was stopped", "protocol")

    def _fail(self, stage: str, message: str, layer: str | None = None):
        self.close()
        self.error = RewardCodeError(stage, message, layer)
        raise self.error

    def compute(self, obs: Any, action: np.ndarray, info: list[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(N,)`` and components ``{name: (N,)}`` for N transitions."""
        if self.error is not None:
            raise self.error
        if self.used >= self.budget:
            self._fail("run", f"used up its budget of {self.budget:g} s of reward-code time", "budget")
        if self._worker is None:
            self._start()
        n = len(action)
        seen = [{k: i[k] for k in self.info_keys if k in i} for i in info]
        request = pickle.dumps((obs, np.asarray(action), seen, self.batched, n), protocol=5)
        started = time.monotonic()
        try:
            body = self._exchange(b"CALL", request, {b"RSLT": result_size_limit(n)}, self.timeout)
        finally:
            self.used += time.monotonic() - started
        try:
            return decode_result(body, n)
        except jail.ProtocolError as e:
            self._breach(e)

    def reward(self, batch: Transitions) -> np.ndarray:
        rewards, components = self.compute(batch.next_obs, batch.action, batch.info)
        self.last_components = components
        for i, info in enumerate(batch.info):
            factors = info.setdefault("factors", {})
            for name, values in components.items():
                factors[f"reward/{name}"] = float(values[i])
        return rewards

    def close(self) -> None:
        """Stop the worker process."""
        if self._worker is not None:
            self._worker.stop()
        self._worker = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_worker"] = None  # each copy starts its own worker on first use
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _death_layer(worker: jail.Worker) -> str:
    code = worker.process.returncode
    return "rlimit" if code is not None and -code in (24, 9) else "crash"  # SIGXCPU, SIGKILL
