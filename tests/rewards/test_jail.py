"""The jail around LLM-written reward code, attacked: a corpus of hostile snippets, each refused or contained with
the layer that stopped it named, with the first layer (checks and RestrictedPython) on and without it; each jail
mechanism alone; and the ordinary code an LLM writes, which must all run.

Every hostile snippet is written so that it returns normally if its attack succeeds, and raises (or is killed)
if it is stopped: an entry that ends without a :class:`RewardCodeError` escaped. Side effects are checked
directly too: no file it meant to write exists afterwards, no secret of the parent reaches its answer or its error.

The corpus is module-level data (:data:`HOSTILE`, :data:`ORDINARY`) with :func:`attempt` and :func:`run_ordinary`,
so a script can run it outside pytest.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import platform
import subprocess
import sysconfig
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robofeedback.protocols import Transitions
from robofeedback.rewards import jail
from robofeedback.rewards.code import LAYERS, CodeReward, RewardCodeError

SECRET_VARIABLE, SECRET = "OPENAI_API_KEY", "sk-test-secret-123"
PARENT = os.getpid()  # the process that imported the corpus: the one attacks aim at
PWNED = f"/tmp/robofeedback-jail-pwned-{PARENT}"  # what an escaped write creates (PWNED*, e.g. PWNED.npy)
CANARY = f"/tmp/robofeedback-jail-canary-{PARENT}"  # a file attacks try to delete or change
THIS_FILE = Path(__file__).resolve()
PROJECT = THIS_FILE.parents[2]
SITE_PACKAGES = Path(np.__file__).resolve().parents[1]
ROWS = 3  # transitions per call

# what an entry may be stopped by
AST = frozenset({"ast check"})
RESTRICTED = frozenset({"RestrictedPython"})
FIRST_LAYER = AST | RESTRICTED
READ = frozenset({"seccomp", "identity", "landlock"})  # a path: seccomp refuses every call that takes one
SECCOMP = frozenset({"seccomp"})  # write-opens, processes, sockets, signals, limits, ids, mounts ...
MEMORY = frozenset({"rlimit"})
CLOCK = frozenset({"wall clock"})
BUDGET = frozenset({"budget"})
PROTOCOL = frozenset({"protocol"})
JAIL_LAYERS = frozenset(
    {"identity", "landlock", "seccomp", "rlimit", "recursion limit", "wall clock", "budget", "protocol", "crash"}
)
NOTHING_TO_FIND = frozenset({None})  # the attack ran, found nothing (the worker's environment is empty) and raised
# limits small enough that resource attacks end quickly
OPTIONS = {"timeout": 1.0, "budget": 3.0, "memory_mb": 256}

# a C extension of the standard library the worker has not loaded (for a dlopen attempt)
DYNLOAD = next(iter(glob.glob(os.path.join(sysconfig.get_config_var("DESTSHARED") or "", "_codecs_cn*.so"))), None)
# system call numbers for the attacks that make raw system calls
SYSCALLS = {
    "x86_64": {
        "execve": 59,
        "socket": 41,
        "process_vm_readv": 310,
        "io_uring_setup": 425,
        "bpf": 321,
        "memfd_create": 319,
    },
    "aarch64": {
        "execve": 221,
        "socket": 198,
        "process_vm_readv": 270,
        "io_uring_setup": 425,
        "bpf": 280,
        "memfd_create": 279,
    },
}.get(platform.machine(), {})

TOKENS = {
    **{f"@SYS_{name}@": str(number) for name, number in SYSCALLS.items()},
    "@PWNED@": repr(PWNED),
    "@CANARY@": repr(CANARY),
    "@PARENT@": str(PARENT),
    "@THIS_FILE@": repr(str(THIS_FILE)),
    "@PYPROJECT@": repr(str(PROJECT / "pyproject.toml")),
    "@SITE@": repr(str(SITE_PACKAGES)),
    "@ROWS@": str(ROWS),
    "@DYNLOAD@": repr(DYNLOAD),
    "@SOCKET@": str(jail.SOCKET_FD),
}


def reward(body: str, top: str = "") -> str:
    """A reward module: ``import math``, ``import numpy as np``, the lines ``top``, and ``compute_reward`` with the
    body ``body``; the @TOKENS@ replaced."""
    text = (
        "import math\n\nimport numpy as np\n"
        + textwrap.dedent(top).strip("\n")
        + "\n\n\ndef compute_reward(obs, action, info):\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + "\n"
    )
    for token, value in TOKENS.items():
        text = text.replace(token, value)
    return text


@dataclasses.dataclass(frozen=True)
class Hostile:
    """One hostile snippet: the layers that may stop it with the first layer on (``layered``) and with it off
    (``jail_only``; None where the entry makes no sense that way), CodeReward options, how many calls it gets,
    and, for entries that stop by themselves (layer None), what their error must say."""

    source: str
    family: str
    layered: frozenset[str | None] | None
    jail_only: frozenset[str | None] | None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    calls: int = 1
    message: str | None = None  # what the error must say, where the expected layer is None

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(m for m, layers in (("layered", self.layered), ("jail-only", self.jail_only)) if layers)

    def expected(self, mode: str) -> frozenset[str | None]:
        return self.layered if mode == "layered" else self.jail_only


def transitions(n: int = ROWS) -> Transitions:
    """A small batch: observations (n, 6), actions (n, 2), and info with the allowed keys and the ones reward
    code must never see."""
    obs = (np.arange(n * 6, dtype=np.float32).reshape(n, 6) - 7.0) / 10.0
    action = np.linspace(-1.0, 1.0, n * 2, dtype=np.float32).reshape(n, 2)
    info = [
        {
            "factors": {"distance": 0.1 * (i + 1), "grasp": float(i % 2)},
            "agent_pos": np.array([i, 2.0 * i]),
            "env_reward": 1000.0,
            "success": True,
            "is_success": True,
            "unscaled_reward": 1000.0,
            "episode": {"r": 1000.0, "l": 10},
            "frames": np.zeros((4, 4, 3), np.uint8),
        }
        for i in range(n)
    ]
    return Transitions(obs - 1.0, action, obs, info)


def attempt(entry: Hostile, first_layer: bool, batch: Transitions | None = None) -> RewardCodeError | None:
    """Build the entry's CodeReward, call it ``entry.calls`` times on a small batch, close it; the error that
    stopped it, or None if it escaped."""
    batch = transitions() if batch is None else batch
    reward_fn = None
    try:
        reward_fn = CodeReward(entry.source, _first_layer=first_layer, **{**OPTIONS, **entry.options})
        for _ in range(entry.calls):
            reward_fn(batch)
    except RewardCodeError as e:
        return e
    finally:
        if reward_fn is not None:
            reward_fn.close()
    return None


# -- the hostile corpus ----------------------------------------------------------------------------------------------

# writes PAYLOAD to the worker's socket (jail.SOCKET_FD, its only fd above 2), then returns normally
_TO_SOCKET = f"""
os.write({jail.SOCKET_FD}, PAYLOAD)
return 1.0, {{}}
"""
# libc through ctypes, with errno, for system calls Python does not wrap
_LIBC = """
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def check(result, what):
    if result < 0:
        raise OSError(ctypes.get_errno(), what)
"""

HOSTILE: dict[str, Hostile] = {}


def _add(family: str, name: str, source: str, layered=AST, jail_only=None, **kw) -> None:
    assert name not in HOSTILE, name
    if "@SYS_" in source:  # a raw system call this architecture's table above lacks
        return
    HOSTILE[name] = Hostile(source, family, layered, jail_only, **kw)


# numpy's attributes and names that lead to files, memory and builtins
_add(
    "numpy",
    "from numpy import save",
    reward("save(@PWNED@, obs)\nreturn 1.0, {}", "from numpy import save"),
    jail_only=SECCOMP,
)
_add(
    "numpy",
    "from numpy import load",
    reward("load('/etc/hostname')\nreturn 1.0, {}", "from numpy import load"),
    jail_only=READ,
)
_add(
    "numpy",
    "from numpy import ctypeslib",
    reward("p = ctypeslib.as_ctypes(obs)\nreturn 1.0, {}", "from numpy import ctypeslib"),
)
_add(
    "numpy",
    "from numpy import testing",
    reward("testing.assert_equal(1, 1)\nreturn 1.0, {}", "from numpy import testing"),
)
_add(
    "numpy",
    "from numpy import lib",
    reward("lib.format.open_memmap(@PWNED@, mode='w+', shape=(2,))\nreturn 1.0, {}", "from numpy import lib"),
    jail_only=SECCOMP,
)
_add(
    "numpy",
    "np.ma.core.builtins.eval",
    reward("""
    np.ma.core.builtins.eval("__import__('subprocess').run(['/bin/true'], check=True)")
    return 1.0, {}
"""),
    layered=RESTRICTED,
    jail_only=SECCOMP,
)
_add(
    "numpy",
    "np.ma.core.builtins.open",
    reward("""
    np.ma.core.builtins.open(@PWNED@, "w").write("# pwned")
    return 1.0, {}
"""),
    layered=RESTRICTED,
    jail_only=SECCOMP,
)
_add(
    "numpy",
    "np.lib.format.open_memmap",
    reward("""
    np.lib.format.open_memmap("/etc/hostname", mode="r")
    return 1.0, {}
"""),
    jail_only=READ,
)
_add(
    "numpy",
    "arr.ctypes to libc",
    reward("""
    ctypes = obs.ctypes._ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(@SYS_execve@, b"/bin/true", None, None) < 0:
        raise OSError(ctypes.get_errno(), "execve")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "numpy",
    "arr.ctypes raw pointer",
    reward("""
    address = obs.ctypes.data
    return float(address > 0), {}
"""),
)
_add("numpy", "arr.tofile", reward("obs.tofile(@PWNED@)\nreturn 1.0, {}"), jail_only=SECCOMP)
_add("numpy", "arr.dump", reward("obs.dump(@PWNED@)\nreturn 1.0, {}"), jail_only=SECCOMP)
_add("numpy", "arr.data memoryview", reward("m = obs.data\nreturn float(len(m)), {}"))
_add("numpy", "np.frombuffer", reward("a = np.frombuffer(obs, dtype=np.uint8)\nreturn float(a.sum()), {}"))
_add("numpy", "np.memmap", reward("m = np.memmap(@PWNED@, mode='w+', shape=(4,))\nreturn 1.0, {}"))
_add(
    "numpy",
    "np.fromfile of the parent's memory",
    reward("a = np.fromfile('/proc/@PARENT@/mem', count=8)\nreturn 1.0, {}"),
    jail_only=READ,
)
_add("numpy", "np.loadtxt of /etc/passwd", reward("a = np.loadtxt('/etc/passwd', dtype=str)\nreturn 1.0, {}"))
_add(
    "numpy",
    "np.savetxt into site-packages",
    reward("np.savetxt(@SITE@ + '/sitecustomize.py', obs)\nreturn 1.0, {}"),
    jail_only=SECCOMP,
)
_add("numpy", "np.testing", reward("np.testing.assert_equal(1, 1)\nreturn 1.0, {}"))
_add("numpy", "np.ctypeslib", reward("p = np.ctypeslib.as_ctypes(obs)\nreturn 1.0, {}"))
_add(
    "numpy",
    "bit_generator.ctypes",
    reward("c = np.random.default_rng().bit_generator.ctypes\nreturn float(c.state_address > 0), {}"),
)
_add("numpy", "np.emath (numpy.lib.scimath)", reward("m = np.emath\nreturn 1.0, {}"), layered=RESTRICTED)
_add("numpy", "np.random.mtrand", reward("m = np.random.mtrand\nreturn 1.0, {}"), layered=RESTRICTED)
_add(
    "numpy",
    "np.core (not yet imported)",
    reward("m = np.core.multiarray\nreturn 1.0, {}"),
    layered=RESTRICTED,  # a module's lazy attributes are refused: they would import
)
_add(
    "numpy",
    "bit_generator.cffi",
    reward("""
    c = np.random.default_rng().bit_generator.cffi
    return float(c.state_address > 0), {}
"""),
    layered=FIRST_LAYER,
)

# operator / functools / inspect reached through a module the code can touch
_add(
    "indirection",
    "np.ma.core.operator.attrgetter",
    reward("""
    get = np.ma.core.operator.attrgetter  # attributes named by strings: nothing for the AST check to see
    mro = get("__class__.__mro__")(obs)
    for cls in get("__subclasses__")(mro[-1])():
        if get("__name__")(cls) == "Popen":
            cls(["/bin/true"]).wait()
            return 1.0, {}
    raise LookupError("no Popen")
"""),
    layered=RESTRICTED,
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "np.ma.core.functools.partial",
    reward("""
    np.ma.core.functools.partial(np.ma.core.builtins.open, @PWNED@, "w")()
    return 1.0, {}
"""),
    layered=RESTRICTED,
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "np.ma.core.inspect.currentframe",
    reward("""
    frame = np.ma.core.inspect.currentframe()
    caller = np.ma.core.operator.attrgetter("f_back.f_globals")(frame)
    caller["os"].open("/etc/hostname", 0)
    return 1.0, {}
"""),
    layered=RESTRICTED,
    jail_only=READ,
)
_add(
    "indirection",
    "import operator",
    reward(
        """
    operator.attrgetter("popen")(os)("touch " + @PWNED@).read()
    return 1.0, {}
""",
        "import operator\nimport os",
    ),
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "import functools",
    reward(
        """
    functools.partial(os.execv, "/bin/true", ["true"])()
""",
        "import functools\nimport os",
    ),
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "inspect.getfile(numpy), then edit it",
    reward(
        """
    open(inspect.getfile(np), "a").write("# pwned")
    return 1.0, {}
""",
        "import inspect",
    ),
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "_getattr_ called directly",
    reward("c = _getattr_(obs, '__class__')\nreturn 1.0, {}"),
    layered=RESTRICTED,
)
_add(
    "indirection",
    "builtins through __builtins__",
    reward("""
    __builtins__["open"](@PWNED@, "w")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
# Cython functions carry their module's globals as the attribute func_globals (no underscore)
_add(
    "indirection",
    "Cython func_globals to builtins.eval",
    reward("""
    builtins = np.random.default_rng.func_globals["__builtins__"]
    builtins.eval("__import__('os').execv('/bin/true', ['true'])")
"""),
    layered=FIRST_LAYER,
    jail_only=SECCOMP,
)
_add(
    "indirection",
    "Cython func_globals to the module loader, reading a file",
    reward("""
    loader = np.random.default_rng.func_globals["__loader__"]
    return float(len(loader.get_data("/etc/hostname"))), {}
"""),
    layered=FIRST_LAYER,
    jail_only=READ,
)
if DYNLOAD:
    _add(
        "indirection",
        "Cython func_globals to the module loader, loading a library",
        reward(
            """
    loader = np.random.default_rng.func_globals["__loader__"]
    loader.create_module(Spec("_codecs_cn", @DYNLOAD@))  # dlopen of any path
    return 1.0, {}
""",
            """
class Spec:
    def __init__(self, name, origin):
        self.name = name
        self.origin = origin
""",
        ),
        layered=FIRST_LAYER,
    )

# frames, tracebacks and generators
_add(
    "frames",
    "traceback tb_frame.f_back.f_globals",
    reward("""
    try:
        1 / 0
    except ZeroDivisionError as e:
        caller = e.__traceback__.tb_frame.f_back
    caller.f_globals["os"].open("/etc/hostname", 0)
    return 1.0, {}
"""),
    jail_only=READ,
)
_add(
    "frames",
    "generator gi_frame.f_builtins",
    reward("""
    gen = (x for x in [1])
    gen.gi_frame.f_builtins["open"](@PWNED@, "w")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "frames",
    "generator function with yield",
    reward("""
    def walk():
        yield 1
    walk().gi_frame.f_builtins["__import__"]("subprocess").run(["/bin/true"], check=True)
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "frames",
    "coroutine cr_frame",
    reward("""
    async def nothing():
        pass
    coro = nothing()
    builtins = coro.cr_frame.f_builtins
    coro.close()
    builtins["__import__"]("os").execv("/bin/true", ["true"])
"""),
    jail_only=SECCOMP,
)
_add(
    "frames",
    "f_back walk to the worker's loop and its socket",
    reward("""
    try:
        1 / 0
    except ZeroDivisionError as e:
        frame = e.__traceback__.tb_frame
    while "fd" not in frame.f_locals:
        frame = frame.f_back
    frame.f_globals["os"].write(frame.f_locals["fd"], b"JUNK" * 64)
    return 1.0, {}
"""),
    jail_only=PROTOCOL,
)
_add(
    "frames",
    "f_back walk to the interpreter's builtins",
    reward("""
    try:
        1 / 0
    except ZeroDivisionError as e:
        frame = e.__traceback__.tb_frame
    while frame.f_back is not None:
        frame = frame.f_back
    frame.f_builtins["__import__"]("os").posix_spawn("/bin/true", ["true"], {})
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "frames",
    "tb_next through a helper",
    reward("""
    def inner():
        1 / 0
    try:
        inner()
    except ZeroDivisionError as e:
        frame = e.__traceback__.tb_next.tb_frame
    frame.f_globals["__builtins__"]["open"]("/etc/hostname").read()
    return 1.0, {}
"""),
    jail_only=READ,
)

# formatting that walks attributes
_add("formatting", "'{0.real}'.format(1)", reward("s = '{0.real}'.format(1)\nreturn 1.0, {}"))
_add(
    "formatting",
    "unbound str.format walk to sys",
    reward("""
    s = str.format("{0.__init__.__globals__[sys].modules[os].environ}", np.ndindex)
    return 1.0, {}
"""),
)
_add("formatting", "format_map", reward("s = '{x.__class__.__mro__}'.format_map({'x': obs})\nreturn 1.0, {}"))
_add(
    "formatting", "map(str.format, ...)", reward("s = list(map(str.format, ['{0.__class__}'], [obs]))\nreturn 1.0, {}")
)
_add("formatting", "f-string attribute walk", reward("s = f'{obs.__class__.__mro__}'\nreturn 1.0, {}"))
_add("formatting", "f-string nested spec walk", reward("s = f'{obs:{obs.__class__}}'\nreturn 1.0, {}"))
_add("formatting", "sorted(key=str.format)", reward("s = sorted(['{0.__class__}'], key=str.format)\nreturn 1.0, {}"))
_add(
    "formatting",
    "% formatting with an attribute name as key",
    reward("s = '%(__class__)s' % obs\nreturn 1.0, {}"),
    layered=NOTHING_TO_FIND,  # % looks keys up by item access, never as attributes
    message="IndexError",
)
_add(
    "formatting",
    "format() builtin with a walking spec",
    reward("s = format(np.ndindex, '{0.__init__.__globals__}')\nreturn 1.0, {}"),
    layered=NOTHING_TO_FIND,
    message="TypeError: unsupported format string",
)

# classes and metaclasses
_add(
    "classes",
    "metaclass=",
    reward("""
    class Meta(metaclass=print):
        pass
    return 1.0, {}
"""),
)
_add(
    "classes",
    "a base class",
    reward("""
    class Leaky(dict):
        pass
    return 1.0, {}
"""),
)
_add(
    "classes",
    "__getattr__ member",
    reward("""
    class Sneaky:
        def __getattr__(self, name):
            return name
    return 1.0, {}
"""),
)
_add(
    "classes",
    "__class_getitem__ member",
    reward("""
    class Sneaky:
        __class_getitem__ = print
    return 1.0, {}
"""),
)
_add(
    "classes",
    "__init_subclass__ member",
    reward("""
    class Sneaky:
        def __init_subclass__(cls):
            pass
    return 1.0, {}
"""),
)
_add(
    "classes",
    "_private member (past the AST check)",
    reward("""
    class Sneaky:
        _hidden = 1
    return 1.0, {}
"""),
    layered=RESTRICTED,
)
_add(
    "classes",
    "type() with three arguments",
    reward("""
    Made = type("Made", (dict,), {})
    return 1.0, {}
"""),
)
_add(
    "classes",
    "__build_class__",
    reward("""
    Made = __build_class__(lambda: None, "Made")
    return 1.0, {}
"""),
)
_add(
    "classes",
    "__subclasses__ to Popen",
    reward("""
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "Popen":
            cls(["/bin/true"]).wait()
            return 1.0, {}
    raise LookupError("no Popen")
"""),
    jail_only=SECCOMP,
)
_add(
    "classes",
    "super()",
    reward("""
    class Sneaky:
        def __init__(self):
            self.parent = super()
    return 1.0, {}
"""),
)
_add(
    "classes",
    "a decorator",
    reward("""
    class Sneaky:
        @property
        def value(self):
            return 1.0
    return Sneaky().value, {}
"""),
)
_add(
    "classes",
    "patching a numpy class",
    reward("""
    def fake(self):
        return 0.0
    np.ndarray.sum = fake
    return 1.0, {}
"""),
    layered=RESTRICTED,
)
_add("classes", "patching a numpy module", reward("np.pi = 3.0\nreturn 1.0, {}"), layered=RESTRICTED)
_add(
    "classes",
    "patching its own class",
    reward("""
    class Plain:
        pass
    Plain.extra = 1
    return 1.0, {}
"""),
    layered=RESTRICTED,
)

# hostile return values
_add("return values", "an object", reward("return obs.dtype, {}"), layered=PROTOCOL, jail_only=PROTOCOL)
_add(
    "return values",
    "an object array",
    reward("return np.array([1.0, 'x'], dtype='O'), {}"),
    layered=PROTOCOL,
    jail_only=PROTOCOL,
)
_add("return values", "a generator", reward("return (x for x in obs), {}"), layered=PROTOCOL, jail_only=PROTOCOL)
_add(
    "return values",
    "a huge nested structure",
    reward("""
    x = 1.0
    for i in range(100000):
        x = [x]
    return 1.0, {"deep": x, "wide": [[1.0] * 10] * 100000}
"""),
    layered=PROTOCOL,
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "a dict subclass",
    reward("""
    class Components(dict):
        pass
    return 1.0, Components(a=1.0)
"""),
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "a tuple subclass",
    reward("""
    class Pair(tuple):
        pass
    return Pair((1.0, {}))
"""),
    jail_only=PROTOCOL,
)
_add("return values", "a non-str component name", reward("return 1.0, {7: 1.0}"), layered=PROTOCOL, jail_only=PROTOCOL)
_add(
    "return values",
    "a str-subclass component name",
    reward("""
    class Name(str):
        pass
    return 1.0, {Name("a"): 1.0}
"""),
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "50k components",
    reward("return 1.0, {f'c{i}': 1.0 for i in range(50000)}"),
    layered=PROTOCOL,
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "an 8 MB component name",
    reward("return 1.0, {'a' * (8 << 20): 1.0}"),
    layered=PROTOCOL,
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "a component name with a NUL and newlines",
    reward("return 1.0, {'a\\0\\nRSLT': 1.0}"),
    layered=PROTOCOL,
    jail_only=PROTOCOL,
)
_add(
    "return values",
    "hostile __float__ that writes a file",
    reward("""
    class Evil(float):
        def __float__(self):
            open(@PWNED@, "w").write("# pwned")
            return 1.0
    return Evil(1.0), {}
"""),
    jail_only=SECCOMP,
)
_add(
    "return values",
    "hostile __float__ that never returns",
    reward("""
    class Evil(int):
        def __float__(self):
            while True:
                pass
    return 1.0, {"x": Evil(1)}
"""),
    jail_only=CLOCK,
)
_add(
    "return values",
    "an object with __float__",
    reward("""
    class Number:
        def __float__(self):
            return 1.0
    return Number(), {}
"""),
    layered=AST,
    jail_only=PROTOCOL,
)

# output floods and corruption of the protocol
_add("ipc", "garbage on the socket", reward(_TO_SOCKET, "import os\nPAYLOAD = b'garbage!' * 64"), jail_only=PROTOCOL)
_add(
    "ipc",
    "a forged pickle on the socket",
    reward(_TO_SOCKET, "import os\nimport pickle\nPAYLOAD = pickle.dumps((np.ones(@ROWS@), {}))"),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "a huge length header",
    reward(_TO_SOCKET, "import os\nimport struct\nPAYLOAD = struct.pack('<4sI', b'RSLT', 2 ** 31)"),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "a fake RSLT with wrong counts",
    reward(
        _TO_SOCKET,
        """
    import os
    import struct
    BODY = struct.pack("<II", 999, 0)
    PAYLOAD = struct.pack("<4sI", b"RSLT", len(BODY)) + BODY
""",
    ),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "a fake RSLT with a bad component name",
    reward(
        _TO_SOCKET,
        """
    import os
    import struct
    BODY = struct.pack("<II", @ROWS@, 1) + bytes(4 * @ROWS@) + bytes([4]) + b"\\xff\\xfe/." + bytes(4 * @ROWS@)
    PAYLOAD = struct.pack("<4sI", b"RSLT", len(BODY)) + BODY
""",
    ),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "a fake RSLT with NaN rewards",
    reward(
        _TO_SOCKET,
        """
    import os
    import struct
    BODY = struct.pack("<II", @ROWS@, 0) + struct.pack("<f", float("nan")) * @ROWS@
    PAYLOAD = struct.pack("<4sI", b"RSLT", len(BODY)) + BODY
""",
    ),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "a frame of the wrong kind",
    reward(_TO_SOCKET, "import os\nimport struct\nPAYLOAD = struct.pack('<4sI', b'REDY', 0)"),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "an error frame with an unknown layer",
    reward(
        _TO_SOCKET,
        """
    import os
    import struct
    BODY = b"run\\0root\\0all good"
    PAYLOAD = struct.pack("<4sI", b"ERR ", len(BODY)) + BODY
""",
    ),
    jail_only=PROTOCOL,
)
_add(
    "ipc",
    "half a frame, then silence",
    reward(
        """
    os.write(@SOCKET@, struct.pack("<4sI", b"RSLT", 100) + b"1234")
    time.sleep(30)
    return 1.0, {}
""",
        "import os\nimport struct\nimport time",
    ),
    jail_only=CLOCK,
)
_add(
    "ipc",
    "the socket closed",
    reward(
        """
    os.close(@SOCKET@)
    return 1.0, {}
""",
        "import os",
    ),
    jail_only=frozenset({"crash"}),
)
_add(
    "ipc",
    "the socket moved onto stdout, then print",
    reward(
        """
    os.close(1)
    fcntl.fcntl(@SOCKET@, fcntl.F_DUPFD, 1)
    print("RSLT garbage", flush=True)
    return 1.0, {}
""",
        "import fcntl\nimport os",
    ),
    jail_only=PROTOCOL | SECCOMP,  # F_DUPFD is not among the fcntl commands seccomp allows
)
_add(
    "ipc",
    "a print flood",
    reward("""
    for i in range(10 ** 9):
        print("RSLT" * 256)
    return 1.0, {}
"""),
    layered=CLOCK | MEMORY,
    jail_only=CLOCK,
)
_add(
    "ipc",
    "an stderr flood",
    reward(
        """
    for i in range(10 ** 9):
        os.write(2, b"x" * 65536)
    return 1.0, {}
""",
        "import os",
    ),
    jail_only=CLOCK,
)

# resource exhaustion
_add(
    "resources",
    "a huge array",
    reward("a = np.ones(10 ** 10)\nreturn float(a.sum()), {}"),
    layered=MEMORY,
    jail_only=MEMORY,
)
_add(
    "resources",
    "a huge string",
    reward("s = 'x' * (10 ** 10)\nreturn float(len(s)), {}"),
    layered=MEMORY,
    jail_only=MEMORY,
)
_add(
    "resources",
    "a growing list",
    reward("s = [0.0 for i in range(10 ** 9)]\nreturn float(len(s)), {}"),
    layered=MEMORY | CLOCK,  # the memory limit, or on a loaded machine the clock first
    jail_only=MEMORY | CLOCK,
)
_add(
    "resources",
    "an endless loop",
    reward("""
    x = 0
    for i in range(10 ** 12):
        x += i
    return 1.0, {}
"""),
    layered=CLOCK,
    jail_only=CLOCK,
)
_add(
    "resources",
    "an endless loop at the top level",
    "x = 0\nfor i in range(10 ** 12):\n    x += i\n\n\ndef compute_reward(obs, action, info):\n    return 1.0, {}\n",
    layered=MEMORY | BUDGET,  # the CPU-time limit, or the budget's clock on the start, ends it
    jail_only=MEMORY | BUDGET,
    options={"budget": 1.0},
)
_add(
    "resources",
    "while True with an unreachable break",
    reward("""
    i = 0
    while True:
        i += 1
        if i < 0:
            break
    return 1.0, {}
"""),
    layered=CLOCK,
    jail_only=CLOCK,
)
_add(
    "resources",
    "slow calls under the per-call limit (busy)",
    reward("""
    x = 0
    for i in range(2 * 10 ** 5):
        x += i
    return 1.0, {}
"""),
    layered=frozenset({"budget", "wall clock"}),  # the per-call limit, where a loaded machine makes a call slower
    options={"budget": 1.5},
    calls=100,
)
_add(
    "resources",
    "slow calls under the per-call limit (sleeping)",
    reward("time.sleep(0.15)\nreturn 1.0, {}", "import time"),
    layered=None,
    jail_only=frozenset({"budget"}),
    options={"budget": 1.5},
    calls=100,
)
_add(
    "resources",
    "spinning with SIGXCPU ignored",
    reward(
        """
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass
""",
        "import signal",
    ),
    jail_only=frozenset({"rlimit", "budget"}),
    options={"timeout": 10.0, "budget": 1.0},
)
_add(
    "resources",
    "deep recursion",
    reward("return depth(0), {}", "def depth(n):\n    return depth(n + 1) + 1"),
    layered=frozenset({"recursion limit"}),
    jail_only=frozenset({"recursion limit"}),
)
_add(
    "resources",
    "C stack overflow with the limit raised",
    reward(
        """
    sys.setrecursionlimit(10 ** 7)
    x = []
    for i in range(3 * 10 ** 5):
        x = [x]
    return float(len(repr(x))), {}
""",
        "import sys",
    ),
    jail_only=frozenset({"crash"}),
    options={"timeout": 3.0},
)
_add(
    "resources",
    "a parser bomb",
    reward("return " + "+".join(["1"] * 100000) + ", {}"),
    layered=AST,
    jail_only=frozenset({"recursion limit"}),
)
_add(
    "resources",
    "a thread bomb",
    reward(
        """
    for _ in range(1000):
        threading.Thread(target=time.sleep, args=(10,)).start()
    return 1.0, {}
""",
        "import threading\nimport time",
    ),
    jail_only=SECCOMP,
)
_add(
    "resources",
    "a fork bomb",
    reward(
        """
    for _ in range(1000):
        os.fork()
    return 1.0, {}
""",
        "import os",
    ),
    jail_only=SECCOMP,
)
_add(
    "resources",
    "file descriptors exhausted",
    reward(
        """
    held = [os.dup(0) for _ in range(1000)]
    return 1.0, {}
""",
        "import os",
    ),
    layered=AST,
    jail_only=SECCOMP | MEMORY,  # dup is not on seccomp's list; RLIMIT_NOFILE behind it
)

# persistence from one candidate to the next
_add(
    "persistence",
    "ast.py into the working directory",
    reward("""
    open("ast.py", "w").write("# pwned")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "persistence",
    "numpy.py into /tmp",
    reward("""
    open("/tmp/numpy.py", "x").write("# pwned")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "persistence",
    "sitecustomize.py into site-packages",
    reward("""
    open(@SITE@ + "/sitecustomize.py", "w").write("# pwned")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add(
    "persistence",
    "a .pth file into site-packages",
    reward(
        """
    fd = os.open(@SITE@ + "/robofeedback-jail-test.pth", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"# pwned")
    return 1.0, {}
""",
        "import os",
    ),
    jail_only=SECCOMP,
)
_add(
    "persistence",
    "editing a file of the project",
    reward("""
    open(@THIS_FILE@, "a").write("# pwned")
    return 1.0, {}
"""),
    jail_only=SECCOMP,
)
_add("persistence", "deleting a file", reward("os.unlink(@CANARY@)\nreturn 1.0, {}", "import os"), jail_only=SECCOMP)
_add(
    "persistence",
    "renaming over a file",
    reward("os.rename(@CANARY@, @PWNED@)\nreturn 1.0, {}", "import os"),
    jail_only=SECCOMP,
)
_add(
    "persistence",
    "truncating a file",
    reward("os.truncate(@CANARY@, 0)\nreturn 1.0, {}", "import os"),
    jail_only=SECCOMP,
)

# escapes to the operating system
_add(
    "os",
    "os.system",
    reward(
        """
    status = os.system("touch " + @PWNED@)
    if status != 0:  # system() gives no exception: read its errno
        raise OSError(errno(), f"os.system returned {status}")
    return 1.0, {}
""",
        _LIBC
        + """
libc.__errno_location.restype = ctypes.POINTER(ctypes.c_int)


def errno():
    return libc.__errno_location().contents.value
""",
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "subprocess.run",
    reward("subprocess.run(['/bin/true'], check=True)\nreturn 1.0, {}", "import subprocess"),
    jail_only=SECCOMP,
)
_add("os", "os.execv", reward("os.execv('/bin/true', ['true'])", "import os"), jail_only=SECCOMP)
_add(
    "os",
    "os.posix_spawn",
    reward("os.posix_spawn('/bin/true', ['true'], {})\nreturn 1.0, {}", "import os"),
    jail_only=SECCOMP,
)
_add(
    "os", "opening a file for writing", reward("open(@PWNED@, 'w').write('# pwned')\nreturn 1.0, {}"), jail_only=SECCOMP
)
_add("os", "reading /etc/hostname", reward("open('/etc/hostname').read()\nreturn 1.0, {}"), jail_only=READ)
_add("os", "reading /etc/shadow", reward("open('/etc/shadow').read()\nreturn 1.0, {}"), jail_only=READ)
_add(
    "os",
    "reading the parent's memory",
    reward("open('/proc/@PARENT@/mem', 'rb').read(1)\nreturn 1.0, {}"),
    jail_only=READ,
)
_add("os", "reading the project's files", reward("open(@PYPROJECT@).read()\nreturn 1.0, {}"), jail_only=READ)
_add("os", "listing a directory", reward("os.listdir('/')\nreturn 1.0, {}", "import os"), jail_only=SECCOMP | READ)
_add(
    "os",
    "a TCP socket",
    reward(
        """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 22))
    return 1.0, {}
""",
        "import socket",
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "an AF_UNIX socket",
    reward(
        """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/run/systemd/private")
    return 1.0, {}
""",
        "import socket",
    ),
    jail_only=SECCOMP,
)
_add("os", "a socketpair", reward("a, b = socket.socketpair()\nreturn 1.0, {}", "import socket"), jail_only=SECCOMP)
_add(
    "os",
    "fork",
    reward(
        """
    if os.fork() == 0:
        os._exit(0)
    return 1.0, {}
""",
        "import os",
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "resource.setrlimit raising a limit",
    reward(
        """
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return 1.0, {}
""",
        "import resource",
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "resource.prlimit raising a limit",
    reward(
        """
    resource.prlimit(0, resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return 1.0, {}
""",
        "import resource",
    ),
    jail_only=SECCOMP,
)
_add("os", "os.setuid(0)", reward("os.setuid(0)\nreturn 1.0, {}", "import os"), jail_only=SECCOMP)
_add(
    "os",
    "killing the parent",
    reward("os.kill(@PARENT@, signal.SIGKILL)\nreturn 1.0, {}", "import os\nimport signal"),
    jail_only=SECCOMP,
)
_add(
    "os",
    "ptrace of the parent",
    reward("check(libc.ptrace(16, @PARENT@, None, None), 'ptrace')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add(
    "os",
    "process_vm_readv of the parent",
    reward(
        """
    buf = ctypes.create_string_buffer(8)
    local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
    check(libc.syscall(@SYS_process_vm_readv@, @PARENT@, local, 1, local, 1, 0), "process_vm_readv")
    return 1.0, {}
""",
        _LIBC,
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "syscall execve",
    reward("check(libc.syscall(@SYS_execve@, b'/bin/true', None, None), 'execve')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add(
    "os",
    "syscall socket",
    reward("check(libc.syscall(@SYS_socket@, 2, 1, 0), 'socket')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add(
    "os",
    "io_uring_setup",
    reward(
        """
    params = ctypes.create_string_buffer(120)
    check(libc.syscall(@SYS_io_uring_setup@, 8, params), "io_uring_setup")
    return 1.0, {}
""",
        _LIBC,
    ),
    jail_only=SECCOMP,
)
_add(
    "os",
    "mount",
    reward("check(libc.mount(b'none', b'.', b'tmpfs', 0, None), 'mount')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add("os", "chroot", reward("os.chroot('/')\nreturn 1.0, {}", "import os"), jail_only=SECCOMP)
_add(
    "os",
    "unshare a user namespace",
    reward("check(libc.unshare(0x10000000), 'unshare')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add("os", "bpf", reward("check(libc.syscall(@SYS_bpf@, 0, None, 0), 'bpf')\nreturn 1.0, {}", _LIBC), jail_only=SECCOMP)
_add(
    "os",
    "memfd_create",
    reward("check(libc.syscall(@SYS_memfd_create@, b'x', 0), 'memfd_create')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)
_add(
    "os",
    "prctl to drop no_new_privs",
    reward("check(libc.prctl(38, 0, 0, 0, 0), 'prctl')\nreturn 1.0, {}", _LIBC),
    jail_only=SECCOMP,
)

# the parent's secrets: each returns the secret as a component name if it finds one
_LEAK = """
NEEDLE = "".join(["s", "k", "-"])  # an API key's prefix, built so that this source does not hold it


def leak(text):
    at = text.find(NEEDLE) if text is not NEEDLE else -1
    return text[at:at + 18] if at >= 0 else None
"""
_add(
    "secrets",
    "os.environ, then the parent's",
    reward(
        """
    found = leak(repr(dict(os.environ))) or leak(open("/proc/@PARENT@/environ").read())
    if found:
        return 1.0, {found: 1.0}
    raise LookupError("no secret")
""",
        "import os\n" + _LEAK,
    ),
    jail_only=READ,
)
for _name, _path in [
    ("/proc/self/environ", "/proc/self/environ"),
    ("/proc/<ppid>/environ", "/proc/@PARENT@/environ"),
    ("/proc/<ppid>/cmdline", "/proc/@PARENT@/cmdline"),
]:
    _add(
        "secrets",
        _name,
        reward(
            f"""
        found = leak(open("{_path}").read())
        if found:
            return 1.0, {{found: 1.0}}
        raise LookupError("no secret")
    """,
            _LEAK,
        ),
        jail_only=READ,
    )
_add(
    "secrets",
    "the str.format globals walk",
    reward(
        """
    found = leak(str.format("{0.__init__.__globals__[sys].modules[os].environ}", np.ndindex))
    if found:
        return 1.0, {found: 1.0}
    raise LookupError("no secret")
""",
        _LEAK,
    ),
    jail_only=NOTHING_TO_FIND,
    message="LookupError: no secret",
)
_add(
    "secrets",
    "every string in the worker's memory",
    reward(
        """
    for holder in gc.get_objects():  # strings are not tracked: look inside every dict, list and tuple
        texts = list(holder) + list(holder.values()) if isinstance(holder, dict) else holder
        for text in texts if isinstance(holder, (dict, list, tuple)) else ():
            found = leak(text) if isinstance(text, str) else None
            if found:
                return 1.0, {found: 1.0}
    raise LookupError("no secret")
""",
        "import gc\n" + _LEAK,
    ),
    jail_only=NOTHING_TO_FIND,
    message="LookupError: no secret",
)
_add(
    "secrets",
    "the hidden info keys",
    reward("""
    if "env_reward" in info or "success" in info or "is_success" in info or "episode" in info or "frames" in info:
        return 1.0, {}
    raise LookupError("no hidden keys")
"""),
    layered=NOTHING_TO_FIND,
    jail_only=NOTHING_TO_FIND,
    message="LookupError: no hidden keys",
)


def _cases() -> list:
    """Every (entry, mode) of the corpus as a test case."""
    return [
        pytest.param(name, mode, id=f"{mode}: {entry.family}: {name}")
        for name, entry in HOSTILE.items()
        for mode in entry.modes
    ]


# -- ordinary code ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Expect:
    """What ordinary code must return on :func:`transitions`: rewards (a function of the batch, or a number for
    every row) and, optionally, components; ``batched`` code gets the whole batch at once."""

    rewards: Callable[[Transitions], Any] | float
    components: dict[str, Callable[[Transitions], Any]] = dataclasses.field(default_factory=dict)
    batched: bool = False

    def __call__(self, batch: Transitions, rewards: np.ndarray, components: dict[str, np.ndarray]) -> None:
        want = self.rewards(batch) if callable(self.rewards) else np.full(len(batch), self.rewards)
        np.testing.assert_allclose(rewards, np.asarray(want, dtype=np.float64), rtol=1e-5, atol=1e-5)
        for name, fn in self.components.items():
            np.testing.assert_allclose(components[name], np.asarray(fn(batch), dtype=np.float64), rtol=1e-5, atol=1e-5)


def rows(fn: Callable[..., float]) -> Callable[[Transitions], np.ndarray]:
    """The per-row expectation ``fn(obs, action, info)`` for every transition of a batch."""
    return lambda b: np.array([fn(b.next_obs[i], b.action[i], b.info[i]) for i in range(len(b))])


def _rng_value(seed: int) -> float:
    rng = np.random.default_rng(seed)
    return float(rng.normal() + rng.uniform(0.0, 1.0))


ORDINARY: dict[str, tuple[str, Expect | float]] = {
    "array reductions": (
        reward("return float(obs.sum() + obs.mean() + obs.std() + obs.max() + obs.min() + obs.any()), {}"),
        Expect(rows(lambda o, a, i: o.sum() + o.mean() + o.std() + o.max() + o.min() + o.any())),
    ),
    "str and repr of arrays and numbers": (
        reward("return float(len(str(obs)) + len(repr(obs)) + len(str(1.5)) + len(repr(2))), {}"),
        Expect(rows(lambda o, a, i: len(str(o)) + len(repr(o)) + 3 + 1)),
    ),
    "f-strings with format specs": (
        reward(
            'label = f"{obs[0]:.2f}|{obs[1]:+08.3f}|{3:>4}|{0.5:.0%}|{obs[2]!r}"\n'
            "return float(label.split('|')[0]) + len(label), {}"
        ),
        Expect(rows(lambda o, a, i: float(f"{o[0]:.2f}") + len(f"{o[0]:.2f}|{o[1]:+08.3f}|{3:>4}|{0.5:.0%}|{o[2]!r}"))),
    ),
    "a helper class with attributes and methods": (
        reward(
            """
            shaper = Shaper(2.0)
            value = shaper.shape(float(obs[0])) + shaper.shape(1.0)
            return value + shaper.calls, {"calls": shaper.calls}
        """,
            """
            class Shaper:
                def __init__(self, scale, offset=0.0):
                    self.scale = scale
                    self.offset = offset
                    self.calls = 0

                def shape(self, x):
                    self.calls = self.calls + 1
                    return self.scale * x + self.offset
        """,
        ),
        Expect(rows(lambda o, a, i: 2.0 * o[0] + 2.0 + 2), {"calls": rows(lambda o, a, i: 2)}),
    ),
    "helper functions with defaults and keywords": (
        reward(
            "return shaped(float(obs[1]), scale=3.0) + shaped(1.0), {}",
            """
            def shaped(x, scale=1.0, offset=0.5):
                return scale * x + offset
        """,
        ),
        Expect(rows(lambda o, a, i: 3.0 * o[1] + 0.5 + 1.5)),
    ),
    "list and dict comprehensions": (
        reward("""
            squares = [v * v for v in obs if v > 0]
            weights = {f"w{k}": float(v) for k, v in enumerate(obs[:3])}
            return float(sum(squares)) + sum(weights.values()), weights
        """),
        Expect(rows(lambda o, a, i: (o[o > 0] ** 2).sum() + o[:3].sum()), {"w1": rows(lambda o, a, i: o[1])}),
    ),
    "lambdas, sorted, map and filter": (
        reward("""
            double = lambda v: 2.0 * v
            ordered = sorted(obs.tolist(), key=lambda v: -abs(v))
            positive = list(filter(lambda v: v > 0, map(double, obs)))
            return ordered[0] + float(sum(positive)), {}
        """),
        Expect(rows(lambda o, a, i: sorted(o.tolist(), key=lambda v: -abs(v))[0] + (2 * o[o > 0]).sum())),
    ),
    "math functions": (
        reward(
            "return math.sqrt(4.0) + math.exp(float(obs[0])) + math.tanh(1.0) + math.atan2(1.0, 2.0) "
            "+ math.hypot(3.0, 4.0) + math.pi + float(math.isfinite(1.0)) + math.log1p(abs(float(obs[1]))), {}",
            "from math import sqrt",
        ),
        Expect(
            rows(
                lambda o, a, i: (
                    2.0 + np.exp(o[0]) + np.tanh(1.0) + np.arctan2(1.0, 2.0) + 5.0 + np.pi + 1.0 + np.log1p(abs(o[1]))
                )
            )
        ),
    ),
    "numpy linalg.norm, clip, exp, tanh, where": (
        reward("""
            distance = np.linalg.norm(obs[:3] - obs[3:6])
            near = np.exp(-distance / 0.5)
            clipped = np.clip(obs, -0.2, 0.2).sum()
            gated = np.where(obs > 0, np.tanh(obs), 0.0).sum()
            return float(near + clipped + gated), {"distance": float(distance)}
        """),
        Expect(
            rows(
                lambda o, a, i: (
                    np.exp(-np.linalg.norm(o[:3] - o[3:6]) / 0.5)
                    + np.clip(o, -0.2, 0.2).sum()
                    + np.where(o > 0, np.tanh(o), 0.0).sum()
                )
            ),
            {"distance": rows(lambda o, a, i: np.linalg.norm(o[:3] - o[3:6]))},
        ),
    ),
    "einsum, dot, cross, outer and matmul": (
        reward("""
            value = np.einsum("i,i->", obs, obs) + np.dot(action, action) + np.cross(obs[:3], obs[3:6]).sum()
            value += np.outer(obs[:2], obs[:2]).sum() + (np.eye(3) @ obs[:3]).sum()
            return float(value), {}
        """),
        Expect(
            rows(
                lambda o, a, i: (
                    o @ o + a @ a + np.cross(o[:3], o[3:6]).sum() + np.outer(o[:2], o[:2]).sum() + o[:3].sum()
                )
            )
        ),
    ),
    "seeded random numbers": (
        reward("rng = np.random.default_rng(7)\nreturn float(rng.normal() + rng.uniform(0.0, 1.0)), {}"),
        _rng_value(7),
    ),
    "percentile, median, cumsum, diff, argsort": (
        reward(
            "return float(np.percentile(obs, 75) + np.median(obs) + np.cumsum(obs)[-1] + np.diff(obs).sum() "
            "+ np.argsort(obs)[0] + np.var(obs)), {}"
        ),
        Expect(
            rows(
                lambda o, a, i: (
                    np.percentile(o, 75) + np.median(o) + o.sum() + np.diff(o).sum() + np.argsort(o)[0] + np.var(o)
                )
            )
        ),
    ),
    "try/except/finally": (
        reward("""
            try:
                value = float(obs[99])
            except IndexError:
                value = -1.0
            try:
                value += 1.0 / 0.0
            except ZeroDivisionError as e:
                value += len(str(e)) * 0.0
            finally:
                value += 0.5
            return value, {}
        """),
        -0.5,
    ),
    "tuple unpacking": (
        reward("""
            a, b = action[0], action[1]
            (p, q), r = (1.0, 2.0), 3.0
            first, *rest = obs.tolist()
            return float(a + b + p + q + r + first + len(rest)), {}
        """),
        Expect(rows(lambda o, a, i: a[0] + a[1] + 6.0 + o[0] + 5)),
    ),
    'info["factors"]["name"]': (
        reward(
            'return -info["factors"]["distance"] + info["factors"].get("missing", 0.25), '
            '{"grasp": info["factors"]["grasp"]}'
        ),
        Expect(
            rows(lambda o, a, i: -i["factors"]["distance"] + 0.25),
            {"grasp": rows(lambda o, a, i: i["factors"]["grasp"])},
        ),
    ),
    'info.get("agent_pos")': (
        reward("""
            pos = info.get("agent_pos")
            if pos is None:
                return 0.0, {}
            return float(np.asarray(pos).sum()) + float(len(info)), {}
        """),
        Expect(rows(lambda o, a, i: i["agent_pos"].sum() + 2)),  # only factors and agent_pos are shown
    ),
    "batched code over (N, D) arrays": (
        reward("""
            distance = np.linalg.norm(obs[:, :3] - obs[:, 3:6], axis=1)
            effort = np.sum(action ** 2, axis=1)
            bonus = np.array([f["factors"]["grasp"] for f in info])
            reward = -distance - 0.1 * effort + bonus
            return reward, {"distance": -distance, "effort": -effort}
        """),
        Expect(
            lambda b: (
                -np.linalg.norm(b.next_obs[:, :3] - b.next_obs[:, 3:6], axis=1)
                - 0.1 * (b.action**2).sum(1)
                + np.array([i["factors"]["grasp"] for i in b.info])
            ),
            {"effort": lambda b: -(b.action**2).sum(1)},
            batched=True,
        ),
    ),
    "batched masks and row writes": (
        reward("""
            reward = np.zeros(len(obs))
            reward[obs[:, 0] > 0] = 1.0
            reward[0] = reward[0] - 0.5
            return reward, {}
        """),
        Expect(
            lambda b: np.where(b.next_obs[:, 0] > 0, 1.0, 0.0) - np.array([0.5] + [0.0] * (len(b) - 1)), batched=True
        ),
    ),
    "print() calls": (
        reward('print("reward", obs[0], sep=":")\nprint(f"{obs.sum():.3f}")\nreturn 1.0, {}'),
        1.0,
    ),
    "loops with enumerate, zip, range and a while with a break": (
        reward("""
            total = 0.0
            for k, (v, w) in enumerate(zip(obs, reversed(obs.tolist()))):
                total += k * v - w
            steps = 0
            while True:
                steps += 1
                if steps >= 3:
                    break
            for k in range(2):
                total -= k
            return total + steps, {}
        """),
        Expect(rows(lambda o, a, i: sum(k * v - w for k, (v, w) in enumerate(zip(o, o[::-1], strict=True))) - 1 + 3)),
    ),
    "generator expressions and builtins": (
        reward(
            "return float(sum(v * v for v in obs) + max(obs, key=abs) + min(abs(v) for v in obs) "
            "+ round(1.26, 1) + divmod(7, 3)[1] + pow(2, 3) + int('3') + len(set([1, 1, 2]))), {}"
        ),
        Expect(rows(lambda o, a, i: (o * o).sum() + max(o, key=abs) + np.abs(o).min() + 1.3 + 1 + 8 + 3 + 2)),
    ),
    "dict and list methods": (
        reward("""
            weights = {"a": 1.0}
            weights.update({"b": 2.0})
            weights.setdefault("c", 3.0)
            values = []
            values.append(float(obs[0]))
            values.extend([1.0, 2.0])
            values.sort(reverse=True)
            del weights["a"]
            return sum(weights.values()) + values[0] + len(list(weights.items())), {}
        """),
        Expect(rows(lambda o, a, i: 5.0 + max(o[0], 2.0) + 2)),
    ),
    "conditional expressions and chained comparisons": (
        reward("x = float(obs[0])\nreturn (1.0 if -0.5 < x < 0.5 else -1.0) + float(x > 0 and x != 1), {}"),
        Expect(rows(lambda o, a, i: (1.0 if -0.5 < o[0] < 0.5 else -1.0) + float(o[0] > 0))),
    ),
    "string methods and % formatting": (
        reward("""
            label = "-".join(["a", "b", "c"]).upper().replace("A", "z")
            text = "%.2f and %d" % (1.2345, 3)
            return float(label == "z-B-C") + float(text == "1.23 and 3") + float("b" in label.lower().split("-")), {}
        """),
        3.0,
    ),
    "closures and nested functions": (
        reward("""
            def make(k):
                def scale(x):
                    return k * x
                return scale
            triple = make(3.0)
            return triple(float(obs[2])), {}
        """),
        Expect(rows(lambda o, a, i: 3.0 * o[2])),
    ),
    "module constants and from-imports": (
        reward(
            "return SCALE * sqrt(pi * pi) + float(linalg.norm([3.0, 4.0])), {}",
            "from math import pi, sqrt\n\nfrom numpy import linalg\n\nSCALE = 2.0",
        ),
        2.0 * np.pi + 5.0,
    ),
    "numpy dtypes, reshape, astype, item and tolist": (
        reward("""
            x = obs.astype(np.float64).reshape(-1, 3)
            value = x.flatten().sum() + x.min(axis=0).sum() + x.argmax() + obs[0].item() + sum(obs.tolist())
            return float(value + np.float32(1.5) + np.int64(2) + obs.shape[0] + obs.ndim + obs.size), {}
        """),
        Expect(rows(lambda o, a, i: 2 * o.sum() + o.reshape(-1, 3).min(0).sum() + o.argmax() + o[0] + 3.5 + 6 + 1 + 6)),
    ),
    "errstate, nan_to_num, isnan and allclose": (
        reward("""
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(np.abs(obs) - np.abs(obs))
            return float(np.nan_to_num(logs, neginf=0.0).sum() + np.isnan(obs).any() + np.allclose(obs, obs)), {}
        """),
        1.0,
    ),
    "assert and isinstance checks": (
        reward("""
            assert obs.shape == (6,), obs.shape
            assert isinstance(info, dict) and isinstance(obs, np.ndarray)
            return float(isinstance(1, int) + isinstance(obs[0], np.floating)), {}
        """),
        2.0,
    ),
    "augmented assignment to an attribute (self.count += 1)": (
        reward(
            "counter = Counter()\ncounter.bump()\nreturn float(counter.count), {}",
            """
            class Counter:
                def __init__(self):
                    self.count = 0

                def bump(self):
                    self.count += 1
        """,
        ),
        1.0,
    ),
    "augmented assignment to a dict item (components['x'] += ...)": (
        reward('components = {"distance": 0.0}\ncomponents["distance"] += 1.0\nreturn 1.0, components'),
        Expect(1.0, {"distance": lambda b: np.ones(len(b))}),
    ),
    "augmented assignment to array items (reward[mask] += bonus)": (
        reward("reward = np.zeros(len(obs))\nreward[obs[:, 0] > 0] += 1.0\nreturn reward, {}"),
        Expect(lambda b: np.where(b.next_obs[:, 0] > 0, 1.0, 0.0), batched=True),
    ),
    "from numpy.linalg import norm": (
        reward("return float(norm(obs[:3] - obs[3:6])), {}", "from numpy.linalg import norm"),
        Expect(rows(lambda o, a, i: np.linalg.norm(o[:3] - o[3:6]))),
    ),
    "import numpy.linalg as la": (
        reward("return float(la.norm(obs[:3])), {}", "import numpy.linalg as la"),
        Expect(rows(lambda o, a, i: np.linalg.norm(o[:3]))),
    ),
}


def run_ordinary(source: str, check: Expect | float, batch: Transitions | None = None) -> None:
    """Run ordinary code (first layer on) on a batch and check what it returns; raises if it is refused or wrong."""
    check = check if isinstance(check, Expect) else Expect(check)
    batch = transitions() if batch is None else batch
    reward_fn = CodeReward(source, batched=check.batched)
    try:
        rewards = reward_fn(batch)
        check(batch, rewards, reward_fn.last_components)
    finally:
        reward_fn.close()


# -- fixtures --------------------------------------------------------------------------------------------------------

# files an escaped attack would create; none may appear
PLANTED = [
    Path("/tmp/numpy.py"),
    Path("/tmp/ast.py"),
    SITE_PACKAGES / "sitecustomize.py",
    SITE_PACKAGES / "robofeedback-jail-test.pth",
]


def _pwned() -> list[str]:
    return [str(p) for p in Path(PWNED).parent.glob(Path(PWNED).name + "*")] + [str(p) for p in PLANTED if p.exists()]


@pytest.fixture(autouse=True)
def secret_and_canary(monkeypatch):
    """The parent holds a secret in its environment; a canary file waits to be deleted. Afterwards: the canary is
    unchanged, this file unchanged, no file an attack would write appeared (any that did is removed, so one
    escape does not poison other tests)."""
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    Path(CANARY).write_text("canary\n")
    before = set(_pwned())
    source = THIS_FILE.read_bytes()
    yield
    written = [path for path in _pwned() if path not in before]
    for path in written:
        Path(path).unlink(missing_ok=True)
    changed = THIS_FILE.read_bytes() != source
    if changed:
        THIS_FILE.write_bytes(source)
    canary = Path(CANARY).read_text() if Path(CANARY).exists() else None
    Path(CANARY).unlink(missing_ok=True)
    assert not written, f"an attack wrote {written}"
    assert not changed, f"an attack changed {THIS_FILE}"
    assert canary == "canary\n", f"an attack changed or removed {CANARY}"


def _assert_no_secret(error: RewardCodeError | None, batch: Transitions) -> None:
    assert error is None or SECRET not in str(error)
    names = " ".join(name for info in batch.info for name in info.get("factors", {}))
    assert SECRET not in names


# -- the tests -------------------------------------------------------------------------------------------------------


def test_the_corpus_is_large_and_covers_every_family():
    families = {entry.family for entry in HOSTILE.values()}
    assert families == {
        "numpy",
        "indirection",
        "frames",
        "formatting",
        "classes",
        "return values",
        "ipc",
        "resources",
        "persistence",
        "os",
        "secrets",
    }
    assert len(HOSTILE) >= 60 and len(ORDINARY) >= 25
    for entry in HOSTILE.values():
        assert entry.modes, entry
        for mode in entry.modes:
            assert entry.expected(mode) <= set(LAYERS) | {None}
            if mode == "jail-only":
                assert entry.expected(mode) <= JAIL_LAYERS | {None}


@pytest.mark.parametrize(("name", "mode"), _cases())
def test_hostile_code_is_refused_or_contained(name, mode):
    entry = HOSTILE[name]
    batch = transitions()
    error = attempt(entry, first_layer=mode == "layered", batch=batch)
    assert error is not None, f"the attack {name!r} ({mode}) was not stopped"
    assert error.layer in entry.expected(mode), f"{name!r} ({mode}): stopped by {error.layer!r}: {error}"
    if error.layer is None:
        assert entry.message and entry.message in error.message, error
    if mode == "jail-only":
        assert error.stage in ("compile", "run")  # nothing is checked in the parent: it ran in the worker
    _assert_no_secret(error, batch)
    os.kill(PARENT, 0)  # the parent is alive (it is this process)


@pytest.mark.parametrize("first_layer", [True, False], ids=["layered", "jail-only"])
def test_a_good_candidate_runs_after_the_corpus(first_layer):
    """Nothing a candidate did is left for the next one: a good candidate runs, and reads what it should."""
    source, check = ORDINARY["batched code over (N, D) arrays"]
    batch = transitions()
    reward_fn = CodeReward(source, batched=True, _first_layer=first_layer)
    try:
        check(batch, reward_fn(batch), reward_fn.last_components)
    finally:
        reward_fn.close()


def test_state_a_candidate_leaves_in_its_worker_does_not_reach_the_next():
    """A candidate may change numpy's module state inside its own worker (a write into a dict is allowed); the
    next candidate has a fresh worker and sees none of it."""
    spoil = reward("""
        np.typecodes["All"] = "x"
        np.sctypeDict["float"] = np.int8
        return 1.0, {}
    """)
    first = CodeReward(spoil)
    first(transitions())
    first.close()
    check = reward("""
        fresh = float(np.typecodes["All"] != "x") + float(np.dtype("float") == np.float64)
        return fresh + float(np.random.default_rng(0).integers(1, 2)), {}
    """)
    run_ordinary(check, 3.0)


def test_errors_name_the_exception_and_the_layer():
    entry = HOSTILE["opening a file for writing"]
    error = attempt(entry, first_layer=False)
    assert (error.stage, error.layer) == ("run", "seccomp")
    assert "PermissionError" in error.message and "blocked by the jail: seccomp" in error.message
    assert "(stopped by seccomp)" in str(error)
    error = attempt(HOSTILE["reading /etc/hostname"], first_layer=False)
    assert error.layer in READ and "PermissionError" in error.message
    assert f"blocked by the jail: {error.layer}" in error.message


def test_floods_and_hostile_numbers_never_reach_the_parent(capfd):
    """Output goes nowhere, and a number whose class would run code when unpickled is read as its float value in
    the worker: nothing of it runs in the parent."""
    source = reward(
        """
        for i in range(2000):
            print("RSLT" * 64)
            os.write(1, b"stdout flood\\n")
            os.write(2, b"stderr flood\\n")
        return Marked(1.5), {"x": Marked(2.0)}
    """,
        """
        import os

        class Marked(float):
            def __reduce__(self):
                return (os.environ.__setitem__, ("ROBOFEEDBACK_JAIL_UNPICKLED", "1"))
    """,
    )
    reward_fn = CodeReward(source, _first_layer=False)
    try:
        np.testing.assert_allclose(reward_fn(transitions()), 1.5)
        np.testing.assert_allclose(reward_fn.last_components["x"], 2.0)
    finally:
        reward_fn.close()
    out, err = capfd.readouterr()
    assert "flood" not in out + err and "RSLT" not in out + err
    assert "ROBOFEEDBACK_JAIL_UNPICKLED" not in os.environ


def test_the_worker_sees_only_what_the_jail_leaves_it():
    """From inside: nobody (when started as root), an empty environment, limits that cannot be raised."""
    source = reward(
        """
        limits = [resource.getrlimit(r) for r in (resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE,
                                                  resource.RLIMIT_NOFILE, resource.RLIMIT_CORE)]
        ok = all(soft == hard for soft, hard in limits) and limits[0][0] == 0 and limits[1][0] == 0
        ok = ok and limits[2][0] <= 16 and set(os.environ) <= set(ENVIRONMENT)
        ok = ok and (os.geteuid() != 0 and os.getegid() != 0 if ROOT else True)
        return float(ok), {}
    """,
        f"import os\nimport resource\n\nENVIRONMENT = {sorted(jail.ENVIRONMENT)!r}\nROOT = {os.geteuid() == 0}",
    )
    reward_fn = CodeReward(source, _first_layer=False)
    try:
        np.testing.assert_allclose(reward_fn(transitions()), 1.0)
        assert reward_fn.applied == ["identity", "rlimits", "landlock", "seccomp"]
    finally:
        reward_fn.close()


# -- ordinary code runs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ORDINARY))
def test_ordinary_code_runs_and_returns_the_right_values(name):
    run_ordinary(*ORDINARY[name])


# -- each mechanism alone ------------------------------------------------------------------------------------------

ALONE = {
    "landlock": ("identity", "seccomp"),
    "seccomp": ("identity", "landlock"),
    "identity": ("landlock", "seccomp"),
}


def _alone(mechanism: str, source: str, **options) -> RewardCodeError | None:
    reward_fn = None
    try:
        reward_fn = CodeReward(source, _first_layer=False, _skip=ALONE[mechanism], **{**OPTIONS, **options})
        assert reward_fn.applied == [
            m for m in ("identity", "rlimits", "landlock", "seccomp") if m not in ALONE[mechanism]
        ]
        reward_fn(transitions())
    except RewardCodeError as e:
        return e
    finally:
        if reward_fn is not None:
            reward_fn.close()
    return None


@pytest.mark.parametrize(
    "name",
    [
        "reading /etc/hostname",
        "reading the project's files",
        "/proc/<ppid>/environ",
        "opening a file for writing",
        "numpy.py into /tmp",
        "sitecustomize.py into site-packages",
        "editing a file of the project",
        "from numpy import save",
    ],
)
def test_landlock_alone_refuses_reads_and_writes(name):
    error = _alone("landlock", HOSTILE[name].source)
    assert error is not None and error.layer == "landlock", error
    assert "PermissionError" in error.message


@pytest.mark.parametrize(
    "name",
    [
        "opening a file for writing",
        "sitecustomize.py into site-packages",
        "a TCP socket",
        "an AF_UNIX socket",
        "syscall socket",
        "fork",
        "a fork bomb",
        "a thread bomb",
        "os.execv",
        "subprocess.run",
        "os.system",
        "resource.prlimit raising a limit",
        "killing the parent",
        "ptrace of the parent",
        "mount",
        "unshare a user namespace",
        "os.setuid(0)",
        "deleting a file",
    ],
)
def test_seccomp_alone_refuses_writes_sockets_processes_and_limits(name):
    error = _alone("seccomp", HOSTILE[name].source)
    assert error is not None and error.layer == "seccomp", error


@pytest.mark.skipif(os.geteuid() != 0, reason="the identity mechanism changes root and user only when started as root")
@pytest.mark.parametrize(
    "name",
    [
        "reading /etc/hostname",
        "reading the project's files",
        "/proc/<ppid>/environ",
        "reading the parent's memory",
        "opening a file for writing",
        "sitecustomize.py into site-packages",
        "np.lib.format.open_memmap",
    ],
)
def test_identity_alone_refuses_paths_outside_its_root(name):
    error = _alone("identity", HOSTILE[name].source)
    assert error is not None and error.layer == "identity", error


@pytest.mark.parametrize(
    "skip",
    [
        pytest.param((), id="the full jail"),
        pytest.param(
            ALONE["seccomp"],
            id="seccomp alone",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="root only: the worker then stays root"),
        ),
    ],
)
def test_no_signal_reaches_another_process_through_fcntl(skip):
    """seccomp allows signals only to the worker itself; fcntl(F_SETOWN / F_SETSIG) on its socket would have the
    kernel signal another process when data arrives, so those fcntl commands are refused too."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        source = reward(
            f"""
            fd = @SOCKET@
            fcntl.fcntl(fd, fcntl.F_SETOWN, {victim.pid})
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGTERM)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
            jail = sys.modules["robofeedback.rewards.jail"]
            read_exact = jail.read_exact

            def late(fd, n):  # not waiting in read() when the next frame comes: the kernel signals the owner
                time.sleep(0.2)
                return read_exact(fd, n)

            jail.read_exact = late
            return 1.0, {{}}
        """,
            """
            import fcntl
            import os
            import signal
            import sys
            import time
        """,
        )
        reward_fn = CodeReward(source, _first_layer=False, _skip=skip)
        with pytest.raises(RewardCodeError) as caught:
            try:
                reward_fn(transitions())
                reward_fn(transitions())
            finally:
                reward_fn.close()
        assert caught.value.layer == "seccomp", caught.value
        time.sleep(0.3)
        assert victim.poll() is None, "the worker signalled a process outside the jail"
    finally:
        victim.kill()
        victim.wait()


def tally() -> dict[str, dict[str, int]]:
    """Run the whole corpus outside pytest: per mode, how many hostile attempts the first layer refused, the jail
    contained, stopped themselves (layer None) or escaped; and how many ordinary snippets ran or were refused."""
    os.environ[SECRET_VARIABLE] = SECRET
    counts: dict[str, dict[str, int]] = {}
    for entry in HOSTILE.values():
        for mode in entry.modes:
            batch = transitions()
            error = attempt(entry, first_layer=mode == "layered", batch=batch)
            _assert_no_secret(error, batch)
            outcome = (
                "escaped"
                if error is None
                else "refused by the first layer"
                if error.layer in FIRST_LAYER
                else "contained by the jail"
                if error.layer in JAIL_LAYERS
                else "stopped by itself"
            )
            row = counts.setdefault(mode, {"attempts": 0})
            row["attempts"] += 1
            row[outcome] = row.get(outcome, 0) + 1
    ordinary = counts.setdefault("ordinary", {"snippets": 0, "ran": 0})
    for source, check in ORDINARY.values():
        ordinary["snippets"] += 1
        try:
            run_ordinary(source, check)
            ordinary["ran"] += 1
        except (RewardCodeError, AssertionError):
            ordinary["refused or wrong"] = ordinary.get("refused or wrong", 0) + 1
    return counts


if __name__ == "__main__":  # python tests/rewards/test_jail.py: the tally
    import json

    print(json.dumps(tally(), indent=2))
