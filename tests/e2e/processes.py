"""The programs under test, run the way a user runs them: installed console scripts as processes.

* `ControllerProcess`: `externalsource-controller` from the virtualenv's `bin`
  with the given flags/env, on free loopback ports (`--health-addr`,
  `--metrics-addr`, `--storage-addr`), `KUBECONFIG` set, JSON logs in a file.
* `HooksSidecar`: `externalsource-hooks-sidecar` with a whitelist and a token
  file; pass `sidecar.controller_flags()` to the controller.
* `ThreadedOrigin`: the origin server of `tests/fixtures/origin.py`, run on its
  own event loop in a thread, so that a synchronous test can block (kubectl,
  sleeps) while the origin keeps answering the controller.
* `fetch_artifact()`: download an artifact the way Flux's fetcher does
  (digest of the bytes served, gzip, safe entry names) and return its files.

All processes are started through `tests/e2e/procs.py` (process groups,
session marker, stopped with the session whatever happens).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import procs
from tests.e2e.controlplane import free_port, wait_for
from tests.fixtures.origin import OriginServer

BIN = pathlib.Path(sys.executable).parent
#: environment every controller gets: loopback origins are the only ones tests may use
CONTROLLER_ENV = {"EXTERNALSOURCE_ALLOW_LOOPBACK_ADDRESSES": "true"}
LOG_TAIL_LINES = 60


class ControllerProcess:
    """One `externalsource-controller` process (see the module docstring).

    `start()` launches it; `wait_ready()` polls `/readyz`; `stop()` signals the
    process group and returns the exit code; `logs()`/`log_events(event)` read
    its JSON log; `metrics()`/`metric(name, **labels)` scrape its `/metrics`;
    `artifact_url(path)` is where its artifact server answers `path`.
    """

    def __init__(
        self,
        *,
        name: str,
        directory: pathlib.Path,
        kubeconfig: pathlib.Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        storage: str = "memory",
    ) -> None:
        self.name = name
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig
        self.log_path = directory / f"{name}.log"
        self.storage_path = directory / "storage"
        self.storage = storage
        self.extra_args = list(args)
        self.new_ports()
        self.env = {
            **os.environ,
            **CONTROLLER_ENV,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def new_ports(self) -> None:
        """Pick other free ports (after losing a race for one; not between restarts).

        `args` (a plain list subclasses may edit) is rebuilt with the new ports.
        """
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.storage_port = free_port()
        self.args = self._default_args()

    def _default_args(self) -> list[str]:
        """The command-line flags (the ports and storage first, then the test's own)."""
        return [
            f"--health-addr=127.0.0.1:{self.health_port}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--storage-addr=127.0.0.1:{self.storage_port}",
            f"--storage-adv-addr=127.0.0.1:{self.storage_port}",
            f"--storage-backend={self.storage}",
            f"--spool-dir={self.directory}",
            "--log-encoding=json",
            *([f"--storage-path={self.storage_path}"] if self.storage == "filesystem" else []),
            *self.extra_args,
        ]

    def start(self) -> ControllerProcess:
        """Launch the process (again, after a `stop()`: same ports, same storage path)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.returncode = None
        self.process = procs.spawn(
            [str(BIN / "externalsource-controller"), *self.args],
            log_path=self.log_path,
            env=self.env,
            cwd=self.directory,
        )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def readyz(self) -> int:
        """The HTTP status of `/readyz` now (0 when nothing answers)."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2.0).status_code
        except httpx.HTTPError:
            return 0

    def wait_ready(self, *, timeout: float = 30.0) -> ControllerProcess:
        """Poll `/readyz` until 200; fail early (with the log) if the process exits."""

        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"{self.name} exited {self.exit_code()}:\n{self.log_tail()}")
            return self.readyz() == 200

        wait_for(ready, timeout=timeout, what=f"{self.name} /readyz")
        return self

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` to the process group, wait (SIGKILL after `timeout`); the exit code."""
        if self.process is None:
            raise AssertionError(f"{self.name} was never started")
        self.returncode = procs.stop(self.process, sig=sig, timeout=timeout)
        return self.returncode

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def artifact_url(self, path: str) -> str:
        """The URL of `path` (an artifact's `status.artifact.path`) on this process's server."""
        return f"http://127.0.0.1:{self.storage_port}/{path.lstrip('/')}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, *, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Parsed JSON log lines (those whose `event` equals `event`, when given)."""
        found = []
        for line in self.logs().splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is None or record.get("event") == event:
                found.append(record)
        return found

    def metrics(self) -> str:
        response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5.0)
        response.raise_for_status()
        return response.text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def is_leader(self) -> bool:
        """Whether `leader_election_master_status` says this process leads."""
        try:
            return self.metric("leader_election_master_status") == 1.0
        except httpx.HTTPError:
            return False


class HooksSidecar:
    """`externalsource-hooks-sidecar` on a free loopback port with its whitelist and token."""

    def __init__(self, *, directory: pathlib.Path, whitelist: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = directory / "hooks-token"
        self.token_file.write_text(secrets.token_urlsafe(24))
        self.token_file.chmod(0o600)
        self.whitelist_path = directory / "whitelist.yaml"
        self.whitelist_path.write_text(whitelist)
        self.log_path = directory / "hooks-sidecar.log"
        self.process = procs.spawn(
            [
                str(BIN / "externalsource-hooks-sidecar"),
                f"--whitelist={self.whitelist_path}",
                f"--token-file={self.token_file}",
                f"--addr=127.0.0.1:{self.port}",
            ],
            log_path=self.log_path,
        )

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"hooks sidecar exited:\n{self.logs()}")
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200

        wait_for(healthy, timeout=20, what="hooks sidecar /healthz")

    def controller_flags(self) -> list[str]:
        """Flags that point a controller at this sidecar with the same whitelist and token."""
        return [
            f"--hooks-endpoint={self.url}",
            f"--hooks-token-file={self.token_file}",
            f"--hooks-whitelist={self.whitelist_path}",
        ]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        return procs.stop(self.process)


class ThreadedOrigin(OriginServer):
    """`OriginServer` (tests/fixtures/origin.py) on its own event loop in a daemon thread.

    `set()`, `mode()`, `url()`, `requests_for()` are called from the test thread as usual.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._init(), self._loop).result(timeout=10)

    async def _init(self) -> None:
        super().__init__()

    def start_sync(self) -> None:
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(timeout=10)

    def close_sync(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def head_count(self, path: str) -> int:
        """How many HEAD requests `path` has received."""
        return sum(1 for r in self.requests_for(path) if r.method == "HEAD")

    def get_count(self, path: str) -> int:
        """How many GET requests `path` has received."""
        return sum(1 for r in self.requests_for(path) if r.method == "GET")


class ArtifactError(AssertionError):
    """The artifact would be refused by Flux's fetcher (digest, gzip or entry names)."""


def fetch_artifact(url: str, *, digest: str, timeout: float = 10.0) -> dict[str, bytes]:
    """Download `url` as Flux's fetcher does and return `{entry name: content}` of its files.

    Checks: HTTP 200 without credentials; `digest` is `sha256:<64 lowercase hex>` and equals
    the sha256 of the bytes served; the body is gzip'd tar; every entry name is relative,
    non-empty, without backslash or `..` (Flux refuses the archive otherwise); only regular
    files, directories and (skipped) symlinks, whose targets stay inside the archive.
    """
    response = httpx.get(url, timeout=timeout)
    if response.status_code != 200:
        raise ArtifactError(f"GET {url} answered {response.status_code}")
    body = response.content
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or len(expected) != 64 or expected != expected.lower():
        raise ArtifactError(f"digest {digest!r} is not sha256:<64 lowercase hex>")
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise ArtifactError(f"computed digest sha256:{actual} doesn't match provided {digest!r}")
    if body[:2] != b"\x1f\x8b":
        raise ArtifactError("requires gzip-compressed body")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        for member in archive.getmembers():
            _check_entry(member)
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def _check_entry(member: tarfile.TarInfo) -> None:
    name = member.name
    if not name or "\\" in name or name.startswith("/") or "../" in f"{name}/":
        raise ArtifactError(f"tar contained invalid name {name!r}")
    if member.issym() or member.islnk():
        target = pathlib.PurePosixPath(name).parent / member.linkname
        if member.linkname.startswith("/") or ".." in target.parts:
            raise ArtifactError(f"link {name!r} -> {member.linkname!r} leaves the archive")
        return
    if not (member.isfile() or member.isdir()):
        raise ArtifactError(f"unsupported file type of {name!r}")


def wait_process_exit(process: ControllerProcess, *, timeout: float) -> int:
    """Wait for a process to exit on its own; its exit code."""
    deadline = time.monotonic() + timeout
    while process.running:
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} still running after {timeout}s")
        time.sleep(0.1)
    code = process.exit_code()
    assert code is not None
    return code
