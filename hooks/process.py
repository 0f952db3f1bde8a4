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

Limitation: a child that calls `setsid()` itself leaves the process group and
cannot be reached by `killpg`; the sidecar container's PID limit is the
backstop for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

import attrs

from hooks.spec import HOOK_FAILED, HookError

MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
TIMEOUT_EXIT_CODE = -int(signal.SIGKILL)
_CHUNK = 64 * 1024


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
    process = await asyncio.create_subprocess_exec(
        path,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PATH": MINIMAL_PATH},
        cwd="/",
        start_new_session=True,
    )
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
        # Kill whatever is left of the group (timeout, overflow, cancellation,
        # or background children of a hook that exited normally); the pipes
        # then reach EOF and the pumps finish.
        _kill_group(process.pid)
        await asyncio.wait(pumps)
        await process.wait()
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
