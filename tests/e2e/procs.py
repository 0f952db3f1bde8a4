"""Child processes of the e2e tier that can never outlive the test session.

Every process the tier starts (etcd, kube-apiserver, kube-controller-manager,
controllers, sidecars) goes through `spawn()`:

* its own process group (`start_new_session`), so a stop reaches the children
  it forked and a Ctrl-C on the terminal does not hit it before we do;
* `PR_SET_PDEATHSIG(SIGKILL)` on Linux: if pytest itself dies (even SIGKILL),
  the kernel kills the child;
* a session marker in its environment (`EXTERNALSOURCE_E2E_SESSION`), so the
  session's last step can prove that no process of this run is left
  (`leftover_processes()`), grandchildren included;
* a registry: `stop_all()` runs from the fixtures' `finally`, from `atexit`
  and on SIGTERM, and stops each group with SIGTERM, then SIGKILL.

Output goes to a log file (never a pipe nobody reads: a full pipe blocks the
child).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pathlib
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence

#: environment variable carried by every process this session started
SESSION_VARIABLE = "EXTERNALSOURCE_E2E_SESSION"
SESSION_ID = uuid.uuid4().hex

_PR_SET_PDEATHSIG = 1
_lock = threading.Lock()
_running: dict[int, subprocess.Popen[bytes]] = {}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    *,
    log_path: pathlib.Path,
    env: Mapping[str, str] | None = None,
    cwd: pathlib.Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group, stdout+stderr appended to `log_path`."""
    full_env = {**(os.environ if env is None else env), SESSION_VARIABLE: SESSION_ID}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, no locks
        )
    with _lock:
        _running[process.pid] = process
    return process


def stop(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int:
    """Signal the process group, wait up to `timeout`, then SIGKILL it; the exit code."""
    try:
        if process.poll() is None:
            _signal_group(process, sig)
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                return process.wait(timeout=10)
        # the leader is gone; children it left in the group get no second chance
        _signal_group(process, signal.SIGKILL)
        return process.returncode
    finally:
        with _lock:
            _running.pop(process.pid, None)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_all(*, timeout: float = 10.0) -> None:
    """Stop every process still registered (newest first: controllers before the API server)."""
    with _lock:
        processes = list(_running.values())
    for process in reversed(processes):
        stop(process, timeout=timeout)


def leftover_processes(session_id: str = SESSION_ID) -> list[str]:
    """`pid cmdline` of live processes carrying a session's marker (this one's by default)."""
    found = []
    marker = f"{SESSION_VARIABLE}={session_id}".encode()
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if status[0] == "Z":  # a zombie is dead; only its parent has not reaped it yet
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append(f"{entry.name} {cmdline.strip()}")
    return found


def _on_sigterm(signum: int, frame: object) -> None:
    stop_all(timeout=5.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(stop_all)
if threading.current_thread() is threading.main_thread():
    with contextlib.suppress(ValueError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
