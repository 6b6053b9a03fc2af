"""Reward functions written as Python code by an LLM (or a person), checked, compiled restricted and run with limits.

LLM text goes in, a :class:`CodeReward` comes out:

1. :func:`extract_code` takes the code block that defines the reward function out of the answer.
2. :func:`check_code` parses it with ``ast`` and refuses anything outside the allow-list: the function
   ``compute_reward(obs, action, info)`` must be defined (``batched=True``: the same over arrays of N
   transitions); imports only of ``math`` and ``numpy``; no dunder names or attributes, no ``exec``,
   ``eval``, ``open``, ``getattr`` and the like; no ``while True`` without a ``break``.
3. The code is compiled with RestrictedPython (attribute access, item access, iteration and writes go
   through guards; numpy's file and foreign-memory functions are refused) and runs in a worker process
   with an address-space limit, and each call with a wall-clock limit, so that an endless loop, a
   memory bomb or a crash ends that candidate with a :class:`RewardCodeError`, never the trainer.

The function returns ``(reward, components)``: a float and a dict of named floats (arrays of N with
``batched``). The components go into each step's ``info["factors"]`` as ``reward/<name>``, so they are
logged and can be shown to the LLM in the next prompt. A NaN or infinite reward is an error.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from robofeedback.rewards.base import RewardFunction, Transitions

FUNCTION = "compute_reward"
ALLOWED_IMPORTS = frozenset({"math", "numpy"})
FORBIDDEN_CALLS = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "input",
        "breakpoint",
        "help",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "dir",
        "type",
        "object",
        "super",
        "memoryview",
        "exit",
        "quit",
    }
)
# numpy names that reach files, the OS or raw memory; refused on the module and its submodules
NUMPY_DENIED = frozenset(
    {
        "load",
        "save",
        "savez",
        "savez_compressed",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromfile",
        "fromregex",
        "frombuffer",
        "memmap",
        "ctypeslib",
        "lib",
        "f2py",
        "distutils",
        "testing",
        "DataSource",
        "os",
        "sys",
        "show_config",
        "get_include",
        "tofile",
        "dump",
        "dumps",
        "ctypes",
        "data",
    }
)
# info keys reward code does not see: the env's own reward is the ground truth, never an input (nor the Monitor's
# episode return); frames and terminal observations are large and not part of a transition
HIDDEN_INFO = frozenset({"env_reward", "episode", "frame", "terminal_observation"})
_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


class RewardCodeError(ValueError):
    """Reward code that was refused or failed: ``stage`` says where (extract, check, compile, run)."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"reward code {stage} error: {message}")
        self.stage, self.message = stage, message


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
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise RewardCodeError("check", f"syntax error on line {e.lineno}: {e.msg}") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == FUNCTION]
    if not functions:
        raise RewardCodeError("check", f"no top-level function {FUNCTION}(obs, action, info)")
    args = [a.arg for a in functions[-1].args.args]
    if args != ["obs", "action", "info"]:
        raise RewardCodeError("check", f"{FUNCTION} must take (obs, action, info), got ({', '.join(args)})")
    for node in ast.walk(tree):
        problem = _refusal(node)
        if problem:
            raise RewardCodeError("check", f"line {getattr(node, 'lineno', '?')}: {problem}")
    return tree


def _refusal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name not in ALLOWED_IMPORTS]
        return f"import of {bad} (only math and numpy)" if bad else None
    if isinstance(node, ast.ImportFrom):
        return None if node.module in ALLOWED_IMPORTS and node.level == 0 else f"import from {node.module}"
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"the name {node.id} is not allowed"
    if isinstance(node, ast.Attribute) and (node.attr.startswith("_") or node.attr in NUMPY_DENIED):
        return f"the attribute .{node.attr} is not allowed"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
        return f"calling {node.func.id}() is not allowed"
    if isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
        return f"the name {node.id} is not allowed"
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return "global and nonlocal are not allowed"
    if isinstance(node, ast.While) and _always_true(node.test):
        if not any(isinstance(n, ast.Break) for n in ast.walk(node)):
            return "a `while True` loop without a break never ends"
    return None


def _always_true(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value)


# -- restricted compilation and execution (inside the worker) -----------------------------------------


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"attribute {name!r} is not allowed")
    if name in NUMPY_DENIED and (_is_numpy_module(obj) or isinstance(obj, np.ndarray)):
        raise AttributeError(f"numpy's {name} is not allowed in reward code")
    if isinstance(obj, str) and name in ("format", "format_map"):  # format fields can walk attributes
        raise AttributeError("str.format is not allowed in reward code; use f-strings")
    return getattr(obj, name, *default)


def _is_numpy_module(obj: Any) -> bool:
    return type(obj).__name__ == "module" and getattr(obj, "__name__", "").split(".")[0] == "numpy"


def _guarded_write(obj: Any) -> Any:
    if isinstance(obj, (dict, list, np.ndarray)):
        return obj
    raise TypeError(f"reward code may only assign into dicts, lists and arrays, not {type(obj).__name__}")


def _guarded_import(name: str, globals=None, locals=None, fromlist=(), level=0):
    if name not in ALLOWED_IMPORTS or level != 0:
        raise ImportError(f"reward code may import only {sorted(ALLOWED_IMPORTS)}, not {name!r}")
    return {"math": math, "numpy": np}[name]


def _inplace(op: str, x: Any, y: Any) -> Any:
    ops = {
        "+=": lambda a, b: a + b,
        "-=": lambda a, b: a - b,
        "*=": lambda a, b: a * b,
        "/=": lambda a, b: a / b,
        "//=": lambda a, b: a // b,
        "%=": lambda a, b: a % b,
        "**=": lambda a, b: a**b,
    }
    if op not in ops:
        raise TypeError(f"the operator {op} is not allowed in reward code")
    return ops[op](x, y)


def compile_reward(source: str):
    """``compute_reward`` from ``source``, checked and compiled with RestrictedPython (runs in this process:
    use :class:`CodeReward` for the time and memory limits)."""
    from RestrictedPython import compile_restricted, safe_builtins
    from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
    from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

    check_code(source)
    try:
        code = compile_restricted(source, filename="<reward code>", mode="exec")
    except SyntaxError as e:  # RestrictedPython lists its refusals as a tuple of messages
        problems = e.args[0] if e.args and isinstance(e.args[0], (tuple, list)) else [str(e)]
        raise RewardCodeError("compile", "; ".join(str(p) for p in problems)) from None
    builtins = {k: v for k, v in safe_builtins.items() if k not in FORBIDDEN_CALLS}
    builtins.update(
        __import__=_guarded_import,
        min=min,
        max=max,
        sum=sum,
        abs=abs,
        all=all,
        any=any,
        enumerate=enumerate,
        zip=zip,
        map=map,
        sorted=sorted,
        reversed=reversed,
        list=list,
        tuple=tuple,
        dict=dict,
        set=set,
    )
    scope: dict[str, Any] = {
        "__builtins__": builtins,
        "__name__": "reward_code",
        "_getattr_": _guarded_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": _guarded_write,
        "_inplacevar_": _inplace,
        "math": math,
        "np": np,
        "numpy": np,
    }
    try:
        exec(code, scope)  # restricted bytecode, guarded scope
    except Exception as e:  # an error at the code's top level (before any call)
        raise RewardCodeError("compile", f"{type(e).__name__}: {e}") from None
    return scope[FUNCTION]


def call_reward(fn, obs: Any, action: np.ndarray, info: Any, batched: bool, n: int) -> tuple[np.ndarray, dict]:
    """Call a compiled reward function and check what it returns: rewards ``(n,)`` and components ``{name: (n,)}``."""
    if batched:
        out = fn(obs, action, info)
        results = [out]
    else:
        results = [fn(obs[i], action[i], info[i]) for i in range(n)]
    rewards, components = [], {}
    for out in results:
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise RewardCodeError("run", f"{FUNCTION} must return (reward, dict of components), got {type(out)}")
        rewards.append(np.asarray(out[0], dtype=np.float64).reshape(-1))
        for name, value in out[1].items():
            components.setdefault(str(name), []).append(np.asarray(value, dtype=np.float64).reshape(-1))
    reward = np.concatenate(rewards)
    if len(reward) != n:
        raise RewardCodeError("run", f"{FUNCTION} returned {len(reward)} rewards for {n} transitions")
    if not np.isfinite(reward).all():
        raise RewardCodeError("run", f"{FUNCTION} returned a non-finite reward (NaN or inf)")
    parts = {name: np.concatenate(v) for name, v in components.items()}
    for name, value in parts.items():
        if len(value) != n:
            raise RewardCodeError("run", f"component {name!r} has {len(value)} values for {n} transitions")
    return reward.astype(np.float32), parts


def _serve(fd: int) -> None:
    """The sandbox process (``python -c``, started by :class:`CodeReward`): read the code and the memory limit,
    limit the address space, compile, then answer calls until told to stop."""
    import resource

    conn = Connection(fd)
    source, memory_mb = conn.recv()
    sys.setrecursionlimit(2000)
    limit = _virtual_memory_bytes() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        fn = compile_reward(source)
        conn.send(("ready", None))
    except RewardCodeError as e:
        conn.send(("error", (e.stage, e.message)))
        return
    while True:
        request = conn.recv()
        if request is None:
            return
        obs, action, info, batched, n = request
        try:
            conn.send(("ok", call_reward(fn, obs, action, info, batched, n)))
        except RewardCodeError as e:
            conn.send(("error", ("run", e.message)))
        except MemoryError:
            conn.send(("error", ("run", f"ran out of its {memory_mb} MB memory limit")))
        except RecursionError:
            conn.send(("error", ("run", "recursion too deep")))
        except Exception as e:  # the candidate's own bug: report it as its error
            conn.send(("error", ("run", f"{type(e).__name__}: {e}")))


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class CodeReward(RewardFunction):
    """A reward function from code (LLM-written or not), run in a sandboxed worker process.

    ``timeout`` is the wall-clock limit of one call (a batch of transitions), ``memory_mb`` the memory the
    worker may allocate beyond what it starts with. ``batched`` code takes arrays of N transitions (``obs``
    (N, D), ``action`` (N, A), ``info`` a list of N dicts) at once. Construction compiles the code in the
    worker, so refused or broken code raises :class:`RewardCodeError` right away. After an error the worker
    is gone and every later call raises that error again.
    """

    def __init__(self, source: str, batched: bool = False, timeout: float = 2.0, memory_mb: int = 512):
        if timeout <= 0 or memory_mb <= 0:
            raise ValueError(f"timeout and memory_mb must be > 0, got {timeout}, {memory_mb}")
        if importlib.util.find_spec("RestrictedPython") is None:
            raise ImportError("reward code runs under RestrictedPython: pip install 'robofeedback[llm]'")
        check_code(source)
        self.source, self.batched = source, bool(batched)
        self.timeout, self.memory_mb = float(timeout), int(memory_mb)
        self.error: RewardCodeError | None = None
        self.last_components: dict[str, np.ndarray] = {}
        self._process = None
        self._conn = None
        self._start()

    def _start(self) -> None:
        # A fresh interpreter (not fork: the trainer has threads; not multiprocessing's spawn: it re-runs the
        # user's main script), talking over a socket pair.
        parent, child = socket.socketpair()
        command = [sys.executable, "-c", f"from robofeedback.rewards.code import _serve; _serve({child.fileno()})"]
        self._process = subprocess.Popen(command, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        child.close()
        self._conn = Connection(parent.detach())
        self._conn.send((self.source, self.memory_mb))
        self._receive(startup=True)

    def _receive(self, startup: bool = False):
        limit = max(self.timeout, 30.0) if startup else self.timeout  # starting Python takes a moment
        if not self._conn.poll(limit):
            self._fail("run", f"no answer within {limit:g} s (an endless loop?); the worker was stopped")
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._fail("run", f"the worker process died (exit code {self._process.wait(5.0)})")
        if status == "error":
            self._fail(*payload)
        return payload

    def _fail(self, stage: str, message: str):
        self.close()
        self.error = RewardCodeError(stage, message)
        raise self.error

    def compute(self, obs: Any, action: np.ndarray, info: list[dict]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(N,)`` and components ``{name: (N,)}`` for N transitions."""
        if self.error is not None:
            raise self.error
        if self._process is None:
            self._start()
        n = len(action)
        lite = [{k: v for k, v in i.items() if k not in HIDDEN_INFO} for i in info]
        self._conn.send((obs, np.asarray(action), lite, self.batched, n))
        return self._receive()

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
        if self._process is not None:
            if self._process.poll() is None:
                try:
                    self._conn.send(None)
                    self._process.wait(0.5)
                except (OSError, subprocess.TimeoutExpired):
                    self._process.kill()
                    self._process.wait(5.0)
            self._conn.close()
        self._process, self._conn = None, None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_process"], state["_conn"] = None, None  # each copy starts its own worker on first use
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
