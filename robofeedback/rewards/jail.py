"""The operating system's containment of untrusted code: the jail a worker process enters before it reads the code.

The Python checks of :mod:`robofeedback.rewards.code` give an LLM clear, early errors; they are not the boundary.
This module is. A worker calls :func:`enter` once its interpreter and numpy have started, and from then on,
whatever it runs (Python that slipped past the checks, or machine code through ``ctypes``):

- **identity**: a worker started as root changes its root directory to its empty private working directory and
  drops to ``nobody:nogroup`` with no supplementary groups, which leaves it no capabilities; ``no_new_privs`` is
  set, so nothing it could reach would give privileges back. A worker started by an ordinary user already has
  none (checked: its effective capability set must be empty).
- **resource limits** (``setrlimit``, hard = soft, which an unprivileged process can only lower): address space,
  CPU seconds, file size 0, no new processes or threads, 16 file descriptors, no core dumps, no locked memory.
- **Landlock** (the kernel's unprivileged access control, ABI 1 or later): no path can be opened, read, written,
  created, removed or executed (no rule allows any); from ABI 4 no TCP bind or connect; from ABI 6 no signal to,
  and no abstract UNIX socket connection with, a process outside the worker's own domain.
- **seccomp** (a filter built with libseccomp): an allow-list of the system calls that computing on memory and
  talking over the inherited socket need. Everything else fails with ``EPERM``: every call that takes a path
  (``openat``, ``stat``, ...), process creation, ``exec``, sockets, ``ptrace``, other processes' memory, signals
  to anyone but itself, limits, ids, namespaces, mounts, ``io_uring``, ``bpf``, keyrings. ``fcntl`` is allowed
  only to read and set descriptor flags (not ``F_SETOWN`` / ``F_SETSIG``, which would signal by proxy),
  ``prlimit64`` only to read a limit.

Denials are error returns (``EACCES`` from Landlock, ``EPERM`` from seccomp), so the code sees an ordinary
``OSError`` and the parent gets a clear message; over-use of memory is a ``MemoryError``, of CPU a ``SIGXCPU``.

If a mechanism is missing on this kernel (:func:`missing`), :func:`require` refuses to start a worker unless the
user names that mechanism in ``allow_missing`` (or in the environment variable ``ROBOFEEDBACK_JAIL_ALLOW_MISSING``,
comma-separated): the weaker mode is chosen by name, never by default.

The parent side is :class:`Worker`: it starts ``python -I`` (isolated: no environment variables of Python's, no
current directory or user site on ``sys.path``) with a fixed minimal environment, an empty private working
directory and only the socket it talks on, reads the worker's answers as size-capped frames with a deadline on
every read, and never unpickles them.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import math
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable

MECHANISMS = ("landlock", "seccomp", "identity")
ALLOW_MISSING_VARIABLE = "ROBOFEEDBACK_JAIL_ALLOW_MISSING"
# the worker's whole environment: one thread for every numeric library, a known locale
ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "LC_ALL": "C.UTF-8",
}
NOBODY = 65534  # nobody:nogroup on Debian, Ubuntu, Fedora and Arch
OPEN_FILES = 16
SOCKET_FD = 3  # where a jailed worker holds its socket to the parent, its only descriptor besides 0-2

# Landlock (include/uapi/linux/landlock.h); the three system calls have the same numbers on every architecture
_LANDLOCK_CREATE_RULESET, _LANDLOCK_RESTRICT_SELF = 444, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
# every file-system right each ABI knows: 13 in ABI 1, then REFER (2), TRUNCATE (3), IOCTL_DEV (5)
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_PR_GET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 21, 38

# seccomp: what a jailed worker may call (names missing on an architecture are skipped)
ALLOWED_SYSCALLS = tuple(
    """
    read write readv writev close fstat lseek getcwd
    mmap munmap mprotect mremap brk madvise
    rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack restart_syscall futex sched_yield sched_getaffinity
    getpid gettid getuid geteuid getgid getegid getrusage getrandom
    clock_gettime clock_getres gettimeofday time nanosleep clock_nanosleep
    exit exit_group
    """.split()
)


class JailError(RuntimeError):
    """A mechanism of the jail is missing or could not be applied; ``mechanism`` names it."""

    def __init__(self, mechanism: str, message: str):
        super().__init__(f"{mechanism}: {message}")
        self.mechanism = mechanism


class ProtocolError(RuntimeError):
    """The worker sent something other than what the protocol allows (wrong kind, too long, malformed)."""


# -- what this machine offers -----------------------------------------------------------------------------------


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is not built in or not enabled at boot."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(version), 0)


def missing() -> dict[str, str]:
    """The mechanisms this machine cannot apply, each with the reason; empty when the full jail is available."""
    out = {}
    if not sys.platform.startswith("linux"):
        return {name: f"the jail needs Linux, this is {sys.platform}" for name in MECHANISMS}
    if landlock_abi() < 1:
        out["landlock"] = (
            "the kernel has no Landlock (it needs Linux 5.13 or later with landlock in the CONFIG_LSM list or "
            "the lsm= boot parameter)"
        )
    try:
        import pyseccomp  # noqa: F401  (loads libseccomp)
    except (ImportError, OSError, AttributeError) as e:
        out["seccomp"] = f"libseccomp cannot be loaded ({e}); install Debian's libseccomp2 and pip's pyseccomp"
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        out["seccomp"] = "the kernel was built without seccomp (CONFIG_SECCOMP)"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwuid(NOBODY)
        except KeyError:
            out["identity"] = f"running as root and there is no user {NOBODY} (nobody) to drop to"
    return out


def allowed_missing(allow_missing: Iterable[str] | None = None) -> frozenset[str]:
    """The mechanisms the user has agreed to run without: ``allow_missing``, or else the environment variable."""
    if allow_missing is None:
        allow_missing = [s.strip() for s in os.environ.get(ALLOW_MISSING_VARIABLE, "").split(",") if s.strip()]
    names = frozenset(allow_missing)
    unknown = names - set(MECHANISMS)
    if unknown:
        raise ValueError(f"unknown jail mechanisms {sorted(unknown)}; the mechanisms are {list(MECHANISMS)}")
    return names


def require(allow_missing: Iterable[str] | None = None) -> frozenset[str]:
    """Check that every mechanism is available or explicitly allowed to be missing; returns the ones to skip.

    Raises :class:`JailError` naming the first missing mechanism that the user did not opt out of."""
    allowed = allowed_missing(allow_missing)
    gaps = missing()
    for name, reason in gaps.items():
        if name not in allowed:
            raise JailError(
                name,
                f"{reason}. Untrusted reward code is not run without it; to run it in a weaker jail anyway, "
                f"name the mechanism: allow_missing=('{name}',) or {ALLOW_MISSING_VARIABLE}={name}",
            )
    return frozenset(gaps)


# -- inside the worker --------------------------------------------------------------------------------------------


def prepare() -> None:
    """Load what :func:`enter` needs (libseccomp's binding) while files can still be read."""
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError, AttributeError):
        pass  # enter() then fails on seccomp, or skips it where the user allowed that


def enter(memory_bytes: int, cpu_seconds: int, skip: Iterable[str] = ()) -> list[str]:
    """Jail this process for good (see the module's docstring), with ``memory_bytes`` of address space and
    ``cpu_seconds`` more of CPU time; returns what was applied, in order.

    Call it once the interpreter and every module the code may use are loaded, from the only thread, with only
    the file descriptors the worker keeps open. ``skip`` names mechanisms to leave out (those :func:`require`
    allowed to be missing); any other failure raises :class:`JailError`."""
    skip = frozenset(skip)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise JailError("identity", f"the worker has {threads} threads; the jail is entered from the only one")
    libc = ctypes.CDLL(None, use_errno=True)
    applied = []
    if "identity" not in skip:
        _drop_identity()
        applied.append("identity")
    _prctl(libc, _PR_SET_NO_NEW_PRIVS, 1)
    _limit(memory_bytes, cpu_seconds)
    applied.append("rlimits")
    if "landlock" not in skip:
        _landlock(libc)
        applied.append("landlock")
    if "seccomp" not in skip:
        _seccomp()
        applied.append("seccomp")
    return applied


def _prctl(libc, option: int, value: int) -> None:
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        raise JailError("identity", f"prctl({option}) failed: {os.strerror(ctypes.get_errno())}")


def _drop_identity() -> None:
    if os.geteuid() == 0:
        os.chroot(".")  # the private working directory, empty: no path outside it exists any more
        os.chdir("/")
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        if 0 in os.getresuid() or 0 in os.getresgid():
            raise JailError("identity", "could not drop root")
    effective, permitted = _capabilities()
    if effective or permitted:
        raise JailError(
            "identity", f"the worker still holds capabilities (effective {effective:#x}, permitted {permitted:#x})"
        )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capabilities() -> tuple[int, int]:
    """This process's effective and permitted capability sets (capget, version 3: two 32-bit words each)."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise JailError("identity", f"capget failed: {os.strerror(ctypes.get_errno())}")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
    )


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the CPU limit counts from the process's start
    limits = {
        resource.RLIMIT_AS: memory_bytes,
        resource.RLIMIT_CPU: math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds,
        resource.RLIMIT_FSIZE: 0,
        resource.RLIMIT_NPROC: 0,
        resource.RLIMIT_NOFILE: OPEN_FILES,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_MEMLOCK: 0,
        resource.RLIMIT_MSGQUEUE: 0,
    }
    for which, value in limits.items():
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _landlock(libc) -> None:
    abi = landlock_abi()
    if abi < 1:
        raise JailError("landlock", "the kernel has no Landlock")
    fs = _FS_RIGHTS_BY_ABI[max(v for v in _FS_RIGHTS_BY_ABI if v <= abi)]
    attr = _RulesetAttr(
        handled_access_fs=fs,
        handled_access_net=(_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
        scoped=(_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = ctypes.sizeof(ctypes.c_uint64) * (3 if abi >= 6 else 2 if abi >= 4 else 1)
    libc.syscall.restype = ctypes.c_long
    ruleset = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        raise JailError("landlock", f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:  # no rule: nothing beneath any path is allowed
        if libc.syscall(ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise JailError("landlock", f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)


def _seccomp() -> None:
    try:
        import pyseccomp as sc
    except (ImportError, OSError, AttributeError) as e:
        raise JailError("seccomp", f"libseccomp cannot be loaded ({e})") from None

    own = os.getpid()
    rules = sc.SyscallFilter(sc.ERRNO(errno.EPERM))
    for name in ALLOWED_SYSCALLS:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0:
            rules.add_rule(sc.ALLOW, name)
    for command in (fcntl.F_GETFD, fcntl.F_SETFD, fcntl.F_GETFL):  # never F_SETOWN / F_SETSIG: signals by proxy
        rules.add_rule(sc.ALLOW, "fcntl", sc.Arg(1, sc.EQ, command))
    rules.add_rule(sc.ALLOW, "prlimit64", sc.Arg(2, sc.EQ, 0))  # read a limit, never set one
    for name in ("kill", "tkill", "tgkill"):  # signals only to itself (abort, raise)
        rules.add_rule(sc.ALLOW, name, sc.Arg(0, sc.EQ, own))
    try:
        rules.load()
    except OSError as e:
        raise JailError("seccomp", f"loading the filter failed: {e}") from None


# -- the parent's side --------------------------------------------------------------------------------------------

FRAME = struct.Struct("<4sI")  # kind (4 ASCII bytes), body length


def send_frame(fd: int, kind: bytes, body: bytes = b"") -> None:
    """Write one frame to ``fd`` (blocking)."""
    data = memoryview(FRAME.pack(kind, len(body)) + body)
    while data:
        data = data[os.write(fd, data) :]


def read_exact(fd: int, n: int) -> bytes:
    """Read exactly ``n`` bytes from ``fd`` (blocking; the worker's side, which trusts its parent)."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive_frame(fd: int) -> tuple[bytes, bytes]:
    """One frame from the parent (the worker's side)."""
    kind, length = FRAME.unpack(read_exact(fd, FRAME.size))
    return kind, read_exact(fd, length)


class Worker:
    """A jailed worker process, seen from the parent: started with ``python -I -c command`` (``command`` gets the
    socket's file descriptor as ``{fd}``), an empty private working directory, the fixed :data:`ENVIRONMENT` and
    nothing else inherited; :meth:`read` takes one frame whose kind and size the caller allows, within a deadline.
    Any breach kills the worker and raises :class:`ProtocolError` or :class:`TimeoutError`."""

    def __init__(self, command: str):
        parent, child = socket.socketpair()
        self.directory = tempfile.mkdtemp(prefix="robofeedback-jail-")
        os.chmod(self.directory, 0o500)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", command.format(fd=child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,  # read only when the worker dies before it is jailed
                cwd=self.directory,
                env=dict(ENVIRONMENT),
                start_new_session=True,
            )
        except BaseException:
            parent.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        finally:
            child.close()
        self.socket = parent

    def send(self, kind: bytes, body: bytes, timeout: float) -> None:
        """Send one frame; a worker that does not take it within ``timeout`` s is killed (:class:`TimeoutError`)."""
        self.socket.settimeout(timeout)
        try:
            self.socket.sendall(FRAME.pack(kind, len(body)) + body)
        except TimeoutError:
            self.kill()
            raise TimeoutError("the worker did not take the request in time") from None
        except OSError as e:
            self.kill()
            raise EOFError(f"the worker is gone ({e})") from None

    def read(self, limits: dict[bytes, int], timeout: float) -> tuple[bytes, bytes]:
        """One frame of a kind in ``limits`` and at most ``limits[kind]`` bytes long, read within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        header = self._read(FRAME.size, deadline)
        kind, length = FRAME.unpack(header)
        if kind not in limits:
            self.kill()
            raise ProtocolError(f"an answer of unknown kind {kind[:4]!r}")
        if length > limits[kind]:
            self.kill()
            raise ProtocolError(f"a {kind.decode()} answer of {length} bytes (at most {limits[kind]} allowed)")
        return kind, self._read(length, deadline)

    def _read(self, n: int, deadline: float) -> bytes:
        buffer, got = bytearray(n), 0
        view = memoryview(buffer)
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise TimeoutError("no complete answer in time")
            self.socket.settimeout(left)
            try:
                count = self.socket.recv_into(view[got:], n - got)
            except TimeoutError:
                continue
            except OSError as e:
                self.kill()
                raise EOFError(f"the connection broke ({e})") from None
            if count == 0:
                raise EOFError("the worker closed the connection")
            got += count
        return bytes(buffer)

    def forget_directory(self) -> None:
        """Remove the private directory once the worker holds it (as its root or working directory), so that
        nothing of it is left behind however the worker ends."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def died_how(self) -> str:
        """Why the worker ended, once it has (its exit code or signal, and its first words on stderr if it died
        before it was jailed)."""
        try:
            code = self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            meaning = {
                "SIGXCPU": "it used up its CPU-time limit",
                "SIGKILL": "killed (by its CPU-time hard limit, or by the parent)",
                "SIGSEGV": "it crashed (segmentation fault)",
                "SIGSYS": "a forbidden system call",
                "SIGXFSZ": "it tried to write a file",
            }.get(name, "")
            text = f"it was ended by {name}" + (f": {meaning}" if meaning else "")
        else:
            text = f"it exited with code {code}"
        stderr = self._stderr_tail()
        return f"{text}; it said: {stderr}" if stderr else text

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self.process.stderr is None or self.process.stderr.closed:
            return ""
        os.set_blocking(self.process.stderr.fileno(), False)
        try:
            data = self.process.stderr.read(64 * 1024) or b""
        except OSError:
            data = b""
        text = data.decode("utf-8", "replace").strip()
        return text[-limit:]

    def stop(self) -> None:
        """Ask the worker to end, and kill it if it has not within half a second."""
        if self.process.poll() is None:
            try:
                self.socket.settimeout(0.5)
                self.socket.sendall(FRAME.pack(b"STOP", 0))
                self.process.wait(0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """End the worker now and free its socket, its pipe and its directory."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5.0)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.socket.close()
        shutil.rmtree(self.directory, ignore_errors=True)
