"""Runs one hook process: exec without a shell, bounded in time and output, no leftovers.

Shared by the sidecar (the production path) and `LocalExecutor` (local CLI
mode), so both have the same semantics:

- `exec` of an absolute path with an argument vector: nothing is ever
  interpreted by a shell; the environment is exactly the given one plus a
  fixed minimal `PATH`; the working directory is `/`.
- The process leads a new session (`start_new_session=True`), so its whole
  process group can be killed with one `killpg(SIGKILL)`: on timeout, when
  stdout exceeds its cap, when the caller is cancelled, and also after a normal
  exit so that background children never outlive their hook.
- Leader exit is observed through a pidfd where the platform has one, because
  asyncio's `Process.wait()` also waits for the pipes to close, which a
  forked child holding stdout would delay until the timeout.
- stdout is capped (exceeding it is an error, never a silent truncation that
  would publish half a document); only the tail of stderr is kept.

`setsid()` escapes: a child that starts its own session leaves the process
group, so `killpg` cannot reach it, and if it keeps the hook's stdout open the
answer waits for it (and holds an execution slot). Two Linux features close
that, without namespaces or cgroups the sidecar has no privilege for:

- every hook leader is made a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`
  between fork and exec; the attribute survives `execve`). While the leader
  lives, every descendant — double-forked, `setsid`, whatever — stays in its
  subtree, so on timeout we walk `/proc/<pid>/task/*/children` and SIGKILL the
  whole tree.
- the process running the hooks (the sidecar; `externalsource fetch`) calls
  `become_subreaper()` too. When a leader exits, its orphans are reparented to
  us rather than to init; since live leaders keep their own orphans, any child
  of ours that is not a live leader belongs to a finished hook, and the sweep
  after each hook kills and reaps all of them.

Whatever the descendants do, the wait for the pipes after the kill is bounded
(`PIPE_GRACE`), so a slot is freed at the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import time
import weakref
from collections.abc import Callable, Mapping, Sequence

import attrs

from hooks.spec import HOOK_FAILED, HookError

MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
TIMEOUT_EXIT_CODE = -int(signal.SIGKILL)
_CHUNK = 64 * 1024
#: seconds to wait for the pipes to reach EOF once every process of a hook was killed
PIPE_GRACE = 2.0
_PR_SET_CHILD_SUBREAPER = 36
_KILL_ROUNDS = 50

#: pids of the leaders `run_process` started and has not waited for yet (never swept)
_LEADERS: set[int] = set()


class _State:
    """Process-wide: whether we are a subreaper; one spawn/sweep lock per event loop."""

    subreaper = False
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
        weakref.WeakKeyDictionary()
    )


_STATE = _State()


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] | None = getattr(libc, "prctl", None)
    return prctl


# resolved once, before any fork: the child must not load libraries between fork and exec
_PRCTL = _load_prctl()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); True on success.

    Called once by the process that runs hooks (the sidecar, local mode) so that
    the post-hook sweep can find and kill what a finished hook left behind.
    """
    if _PRCTL is not None and _PRCTL(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
        _STATE.subreaper = True
    return _STATE.subreaper


def _leader_setup() -> None:
    """Runs in the child between fork and exec: keep every descendant in the leader's subtree."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _STATE.locks.get(loop)
    if lock is None:
        lock = _STATE.locks[loop] = asyncio.Lock()
    return lock


@attrs.frozen
class ExecutionResult:
    """What one execution produced. `timed_out` implies `exit_code == -9`."""

    exit_code: int
    stdout: bytes = attrs.field(repr=False)
    stderr_tail: str
    duration: float
    timed_out: bool = False


class OutputLimitExceeded(HookError):
    """stdout grew beyond its cap; the process group was killed."""

    def __init__(self, *, limit: int) -> None:
        super().__init__(f"output exceeded {limit} bytes", reason=HOOK_FAILED, transient=True)
        self.limit = limit


async def run_process(
    *,
    path: str,
    args: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes,
    timeout: float,
    max_stdout: int,
    max_stderr: int,
) -> ExecutionResult:
    """Execute `path` with `args`; raises `OutputLimitExceeded`, or `OSError` if exec fails."""
    started = time.monotonic()
    async with _lock():  # a sweep must never see a leader before it is registered
        process = await asyncio.create_subprocess_exec(
            path,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**env, "PATH": MINIMAL_PATH},
            cwd="/",
            start_new_session=True,
            preexec_fn=_leader_setup,
        )
        _LEADERS.add(process.pid)
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = bytearray()
    stderr = bytearray()
    overflow = False

    def keep_stdout(chunk: bytes) -> None:
        nonlocal overflow
        if overflow:
            return
        stdout.extend(chunk)
        if len(stdout) > max_stdout:
            overflow = True
            stdout.clear()
            _kill_group(process.pid)

    def keep_stderr_tail(chunk: bytes) -> None:
        stderr.extend(chunk)
        del stderr[: max(0, len(stderr) - max_stderr)]

    pumps = [
        asyncio.create_task(_feed(process.stdin, stdin)),
        asyncio.create_task(_drain(process.stdout, keep_stdout)),
        asyncio.create_task(_drain(process.stderr, keep_stderr_tail)),
    ]
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await _leader_exited(process)
    except TimeoutError:
        timed_out = True
    finally:
        # Kill whatever is left of the hook (timeout, overflow, cancellation, or
        # background children of a hook that exited normally): the leader's
        # subtree, its group, and orphans it left to us; the pipes then reach EOF.
        _kill_tree(process.pid)
        _kill_group(process.pid)
        await _sweep_orphans()
        _, pending = await asyncio.wait(pumps, timeout=PIPE_GRACE)
        for pump in pending:  # a process we could not kill still holds a pipe
            pump.cancel()
        if pending:
            await asyncio.wait(pending)
            _close_pipes(process)
        await process.wait()
        _LEADERS.discard(process.pid)
    if overflow:
        raise OutputLimitExceeded(limit=max_stdout)
    return ExecutionResult(
        exit_code=TIMEOUT_EXIT_CODE if timed_out else _exit_code(process),
        stdout=b"" if timed_out else bytes(stdout),
        stderr_tail=stderr.decode("utf-8", errors="replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )


def _exit_code(process: asyncio.subprocess.Process) -> int:
    assert process.returncode is not None
    return process.returncode


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (zombies included), from /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    seen: list[int] = []
    frontier = [pid]
    while frontier and len(seen) < 100_000:
        children = [c for p in frontier for c in _children(p) if c not in seen]
        seen.extend(children)
        frontier = children
    return seen


def _kill_tree(leader: int) -> None:
    """SIGKILL every descendant of a live leader (a subreaper: they are all in its subtree)."""
    for _ in range(_KILL_ROUNDS):
        victims = _descendants(leader)
        if not victims:
            return
        for pid in victims:
            _kill(pid)


async def _sweep_orphans() -> None:
    """Kill and reap our children that are no live leader: what finished hooks left behind."""
    if not _STATE.subreaper:
        return
    async with _lock():
        for _ in range(_KILL_ROUNDS):
            strays = [pid for pid in _children(os.getpid()) if pid not in _LEADERS]
            if not strays:
                return
            for stray in strays:
                for pid in _descendants(stray):
                    _kill(pid)
                _kill(stray)
            await asyncio.sleep(0.01)
            for stray in strays:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(stray, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks


def _close_pipes(process: asyncio.subprocess.Process) -> None:
    for pipe in (process.stdout, process.stderr):
        transport = getattr(pipe, "_transport", None)
        if transport is not None:
            transport.close()


async def _leader_exited(process: asyncio.subprocess.Process) -> None:
    """Return when the group leader exits, even if a child still holds its pipes."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        await process.wait()
        return
    try:
        pidfd = pidfd_open(process.pid)
    except ProcessLookupError:  # already exited and reaped
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()

    def mark_exited() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, mark_exited)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    # A hook may exit without reading its stdin: that is its right, not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.write(data)
        await pipe.drain()
    pipe.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await pipe.wait_closed()


async def _drain(pipe: asyncio.StreamReader, keep: Callable[[bytes], None]) -> None:
    while chunk := await pipe.read(_CHUNK):
        keep(chunk)
