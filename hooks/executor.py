"""Where hook processes run: the sidecar over loopback HTTP, or this process (local mode).

`HookRunner` talks to the `Executor` protocol only. `SidecarExecutor` is the
production path: the sidecar is the security boundary, so the client sends
the command *name* and the sidecar resolves it through its own whitelist.
`LocalExecutor` runs the same `process.run_process` in-process for the local
CLI mode, behind the same whitelist check, so both behave alike.

Failures of the transport (sidecar unreachable, 5xx, garbage answer) raise
`ExecutorUnavailable`: always transient, and never "ignored" by a hook's
retry policy, because passing data through untransformed while the sidecar
restarts would flap the published revision.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp

from hooks.process import ExecutionResult, run_process
from hooks.spec import HOOK_FAILED, HOOK_NOT_ALLOWED, HookError
from hooks.whitelist import WhitelistChecker

DEFAULT_MAX_STDOUT = 64 * 1024 * 1024
DEFAULT_MAX_STDERR = 64 * 1024
#: extra seconds the HTTP call may take beyond twice the hook timeout
#: (queueing for a free slot in the sidecar may take up to one hook timeout)
_HTTP_MARGIN = 10.0

__all__ = ["ExecutionResult", "Executor", "ExecutorUnavailable", "LocalExecutor", "SidecarExecutor"]


class ExecutorUnavailable(HookError):
    """The executor could not be reached or answered nonsense (transient)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=HOOK_FAILED, transient=True)


class Executor(Protocol):
    async def execute(
        self,
        *,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes,
        timeout: float,
    ) -> ExecutionResult: ...


class LocalExecutor:
    """Runs hooks as child processes of this process (local CLI mode, tests of the runner)."""

    def __init__(
        self,
        whitelist: WhitelistChecker,
        *,
        max_stdout: int = DEFAULT_MAX_STDOUT,
        max_stderr: int = DEFAULT_MAX_STDERR,
    ) -> None:
        self._whitelist = whitelist
        self._max_stdout = max_stdout
        self._max_stderr = max_stderr

    async def execute(
        self,
        *,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes,
        timeout: float,
    ) -> ExecutionResult:
        path = self._whitelist.check(command, args, env=env.keys())
        try:
            return await run_process(
                path=path,
                args=args,
                env=env,
                stdin=stdin,
                timeout=timeout,
                max_stdout=self._max_stdout,
                max_stderr=self._max_stderr,
            )
        except OSError as exc:
            raise HookError(
                f"cannot execute {path}: {exc.strerror}", reason=HOOK_FAILED, transient=True
            ) from None


class SidecarExecutor:
    """HTTP client of the hooks sidecar. The token file is re-read per call (rotation)."""

    def __init__(
        self,
        endpoint: str,
        token_file: str,
        *,
        max_response_size: int = DEFAULT_MAX_STDOUT * 4 // 3 + 1024 * 1024,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token_file = token_file
        self.max_response_size = max_response_size
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _read_token(self) -> str:
        try:
            with open(self.token_file, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as exc:
            raise ExecutorUnavailable(
                f"cannot read the hooks sidecar token file {self.token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise ExecutorUnavailable(f"the hooks sidecar token file {self.token_file} is empty")
        return token

    async def execute(
        self,
        *,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes,
        timeout: float,
    ) -> ExecutionResult:
        payload = {
            "command": command,
            "args": list(args),
            "env": dict(env),
            "stdin": base64.b64encode(stdin).decode("ascii"),
            "timeout": timeout,
        }
        headers = {"Authorization": f"Bearer {self._read_token()}"}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        deadline = aiohttp.ClientTimeout(total=2 * timeout + _HTTP_MARGIN)
        try:
            async with self._session.post(
                f"{self.endpoint}/v1/execute", json=payload, headers=headers, timeout=deadline
            ) as response:
                status = response.status
                raw = await _read_limited(response.content, self.max_response_size)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExecutorUnavailable(
                f"hooks sidecar at {self.endpoint} is unreachable: {type(exc).__name__}"
            ) from None
        return _decode_response(status, raw, endpoint=self.endpoint)


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    data = bytearray()
    async for chunk in stream.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise ExecutorUnavailable(f"hooks sidecar response exceeded {limit} bytes")
    return bytes(data)


def _decode_response(status: int, raw: bytes, *, endpoint: str) -> ExecutionResult:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ExecutorUnavailable(f"hooks sidecar at {endpoint} answered {status} without JSON")
    if status == 200:
        try:
            return ExecutionResult(
                exit_code=int(body["exitCode"]),
                stdout=base64.b64decode(body["stdout"], validate=True),
                stderr_tail=str(body["stderrTail"]),
                duration=float(body["durationSeconds"]),
                timed_out=bool(body.get("timedOut", False)),
            )
        except (KeyError, TypeError, ValueError):
            raise ExecutorUnavailable(
                f"hooks sidecar at {endpoint} answered an incomplete result"
            ) from None
    error = str(body.get("error", "no error message"))
    if status == 403:
        raise HookError(f"hooks sidecar refused: {error}", reason=HOOK_NOT_ALLOWED)
    if status == 422:
        raise HookError(error, reason=HOOK_FAILED, transient=True)
    if status == 400:
        raise HookError(f"hooks sidecar rejected the request: {error}", reason=HOOK_FAILED)
    raise ExecutorUnavailable(f"hooks sidecar at {endpoint} answered {status}: {error}")
