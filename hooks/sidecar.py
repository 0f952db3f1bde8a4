"""The hooks sidecar: an HTTP server on the pod's loopback that executes whitelisted commands.

It is the security boundary of hooks, so it trusts nothing the controller
says: every request must carry the shared bearer token (compared in constant
time, checked before the body is even read), every command is checked against
the sidecar's *own* whitelist, and the process runs through
`hooks.process.run_process` (no shell, minimal env, process-group kill, output
caps, every descendant killed, `setsid` or not: the sidecar is a child
subreaper). A semaphore bounds concurrent executions; a request waits for a
slot at most its own timeout, then gets 429.

API (documented with examples in docs/hooks.md):

    POST /v1/execute  {command, args, env, stdin (base64), timeout}
      200 {exitCode, stdout (base64), stderrTail, durationSeconds, timedOut}
          (a timed-out hook is a 200 with timedOut=true and exitCode -9)
      400 malformed request · 401 missing/wrong token · 403 not whitelisted
      413 body too large · 422 ran but failed to produce a result (output cap,
      exec error) · 429 no free execution slot
    GET /healthz · GET /metrics

Each execution is logged with command, args, outcome and duration; env values
and stdin are never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any

import attrs
import prometheus_client
import structlog
from aiohttp import web

from hooks.executor import DEFAULT_MAX_STDERR, DEFAULT_MAX_STDOUT
from hooks.process import ExecutionResult, OutputLimitExceeded, become_subreaper, run_process
from hooks.spec import HOOK_FAILED, HookError
from hooks.whitelist_manager import WhitelistManager

log = structlog.get_logger(__name__)


@attrs.frozen
class SidecarLimits:
    max_stdout: int = DEFAULT_MAX_STDOUT
    max_stderr: int = DEFAULT_MAX_STDERR
    max_stdin: int = 128 * 1024 * 1024
    max_concurrent: int = 4
    max_timeout: float = 600.0


class TokenFile:
    """The shared token, re-read on every request so a rotated Secret applies at once."""

    def __init__(self, path: str) -> None:
        self.path = path

    def matches(self, header: str | None) -> bool:
        try:
            with open(self.path, "rb") as file:
                expected = file.read().strip()
        except OSError as exc:
            log.error("hooks.sidecar.token_unreadable", path=self.path, error=exc.strerror)
            return False
        if not expected or header is None or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), expected)


def _error(status: int, message: str, *, reason: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if reason:
        body["reason"] = reason
    return web.json_response(body, status=status)


@attrs.frozen
class _Request:
    command: str
    args: tuple[str, ...]
    env: Mapping[str, str] = attrs.field(repr=False)
    stdin: bytes = attrs.field(repr=False)
    timeout: float


def _parse_request(body: Any, *, max_timeout: float) -> _Request:
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    command, args, env = body.get("command"), body.get("args", []), body.get("env", {})
    timeout = body.get("timeout")
    if not isinstance(command, str):
        raise ValueError("'command' must be a string")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("'args' must be a list of strings")
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\0" not in v for k, v in env.items()
    ):
        raise ValueError("'env' must be an object of string values without NUL bytes")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError("'timeout' must be a number of seconds")
    if not 0 < timeout <= max_timeout:
        raise ValueError(f"'timeout' must be in (0, {max_timeout}] seconds")
    try:
        stdin = base64.b64decode(body.get("stdin", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError("'stdin' must be base64") from None
    return _Request(command=command, args=tuple(args), env=env, stdin=stdin, timeout=timeout)


def create_app(
    *, whitelist: WhitelistManager, token: TokenFile, limits: SidecarLimits
) -> web.Application:
    """The aiohttp application; `main()` serves it, tests may serve it too."""
    slots = asyncio.Semaphore(limits.max_concurrent)

    async def execute(request: web.Request) -> web.Response:
        if not token.matches(request.headers.get("Authorization")):
            log.warning("hooks.sidecar.unauthorized", remote=request.remote)
            return _error(401, "missing or wrong bearer token")
        try:
            parsed = _parse_request(await request.json(), max_timeout=limits.max_timeout)
        except ValueError as exc:
            return _error(400, str(exc))
        except RecursionError:  # 100k-deep JSON: hostile or broken, never a 500
            return _error(400, "request body is nested too deeply")
        try:
            path = whitelist.check(parsed.command, parsed.args, env=parsed.env.keys())
        except HookError as exc:
            _log_execution(parsed, outcome="not_allowed", duration=0.0)
            return _error(403, exc.message, reason=exc.reason)
        try:
            async with asyncio.timeout(parsed.timeout):
                await slots.acquire()
        except TimeoutError:
            _log_execution(parsed, outcome="busy", duration=0.0)
            return _error(429, f"all {limits.max_concurrent} execution slots are busy")
        try:
            result = await run_process(
                path=path,
                args=parsed.args,
                env=parsed.env,
                stdin=parsed.stdin,
                timeout=parsed.timeout,
                max_stdout=limits.max_stdout,
                max_stderr=limits.max_stderr,
            )
        except OutputLimitExceeded as exc:
            _log_execution(parsed, outcome="output_exceeded", duration=None)
            return _error(422, f"{parsed.command}: {exc.message}", reason=HOOK_FAILED)
        except OSError as exc:
            _log_execution(parsed, outcome="exec_failed", duration=None)
            return _error(422, f"cannot execute {path}: {exc.strerror}", reason=HOOK_FAILED)
        finally:
            slots.release()
        _log_execution(parsed, outcome=_outcome(result), duration=result.duration, result=result)
        return web.json_response(
            {
                "exitCode": result.exit_code,
                "stdout": base64.b64encode(result.stdout).decode("ascii"),
                "stderrTail": result.stderr_tail,
                "durationSeconds": result.duration,
                "timedOut": result.timed_out,
            }
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_client.generate_latest(),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )

    # base64 inflates stdin by 4/3; the rest of the JSON is small
    app = web.Application(client_max_size=limits.max_stdin * 4 // 3 + 1024 * 1024)
    app.router.add_post("/v1/execute", execute)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def _outcome(result: ExecutionResult) -> str:
    if result.timed_out:
        return "timeout"
    return "success" if result.exit_code == 0 else "failure"


def _log_execution(
    request: _Request,
    *,
    outcome: str,
    duration: float | None,
    result: ExecutionResult | None = None,
) -> None:
    log.info(
        "hooks.sidecar.execution",
        command=request.command,
        args=list(request.args),
        env_names=sorted(request.env),
        stdin_bytes=len(request.stdin),
        outcome=outcome,
        exit_code=None if result is None else result.exit_code,
        duration=None if duration is None else round(duration, 4),
    )


def _parse_addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="externalsource-hooks-sidecar",
        description="Execute whitelisted hook commands for the externalsource controller.",
    )
    p.add_argument("--whitelist", required=True, help="YAML whitelist file (reloaded on change).")
    p.add_argument("--token-file", required=True, help="File holding the shared bearer token.")
    p.add_argument("--addr", type=_parse_addr, default=("127.0.0.1", 8090), help="HOST:PORT.")
    p.add_argument("--max-stdout", type=int, default=DEFAULT_MAX_STDOUT, help="stdout cap, bytes.")
    p.add_argument("--max-stderr", type=int, default=DEFAULT_MAX_STDERR, help="stderr tail, bytes.")
    p.add_argument("--max-stdin", type=int, default=128 * 1024 * 1024, help="stdin cap, bytes.")
    p.add_argument("--max-concurrent", type=int, default=4, help="Concurrent executions.")
    p.add_argument("--max-timeout", type=float, default=600.0, help="Largest hook timeout, s.")
    p.add_argument("--whitelist-reload-interval", type=float, default=5.0, help="Seconds.")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="Level."
    )
    return p


def _configure_logging(level: str) -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def serve(
    *, app: web.Application, addr: tuple[str, int], whitelist: WhitelistManager
) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight executions (bounded) and return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, shutdown_timeout=30.0, access_log=None)
    await runner.setup()
    watcher = asyncio.create_task(whitelist.run())
    try:
        await web.TCPSite(runner, addr[0], addr[1]).start()
        host, port = runner.addresses[0][:2]
        log.info("hooks.sidecar.listening", addr=f"{host}:{port}")
        await stop.wait()
        log.info("hooks.sidecar.stopping")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    if not become_subreaper():  # orphans of finished hooks come to us, to be killed
        log.warning("hooks.sidecar.no_subreaper", detail="prctl(PR_SET_CHILD_SUBREAPER) failed")
    whitelist = WhitelistManager(args.whitelist, reload_interval=args.whitelist_reload_interval)
    if whitelist.error is not None:
        sys.exit(f"externalsource-hooks-sidecar: invalid --whitelist: {whitelist.error}")
    limits = SidecarLimits(
        max_stdout=args.max_stdout,
        max_stderr=args.max_stderr,
        max_stdin=args.max_stdin,
        max_concurrent=args.max_concurrent,
        max_timeout=args.max_timeout,
    )
    app = create_app(whitelist=whitelist, token=TokenFile(args.token_file), limits=limits)
    asyncio.run(serve(app=app, addr=args.addr, whitelist=whitelist))


if __name__ == "__main__":
    main()
