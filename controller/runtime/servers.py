"""The probe and metrics HTTP servers (aiohttp), on their own ports like controller-runtime's.

- `/healthz` (liveness, `--health-addr`): 200 while every liveness check
  passes. The checks are "the event loop's heartbeat is recent" and "each
  informer made progress recently" — a wedged loop or a stuck watch restarts
  the pod; a slow origin does not.
- `/readyz` (readiness, same port): 200 once the informer caches are synced
  and the extra checks pass. Leadership does not gate readiness (a follower is
  a healthy replica) but the body shows it: `"leader": true|false|"disabled"`.
- `/metrics` (`--metrics-addr`): prometheus-client's default REGISTRY.

Bodies are small JSON documents naming each check, so `kubectl describe pod`
and `curl` show which one failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

Check = Callable[[], bool]


def parse_addr(addr: str) -> tuple[str | None, int]:
    """Go-style `host:port`; an empty host (`:9440`) means every interface."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{addr!r} is not host:port")
    return (host.strip("[]") or None), int(port)


def _report(checks: Mapping[str, Check], **extra: Any) -> web.Response:
    results = {}
    for name, check in checks.items():
        try:
            results[name] = bool(check())
        except Exception:
            results[name] = False
    ok = all(results.values())
    body = {"status": "ok" if ok else "failed", "checks": results, **extra}
    return web.json_response(body, status=200 if ok else 503)


def health_app(
    *,
    liveness: Mapping[str, Check],
    readiness: Mapping[str, Check],
    leadership: Callable[[], bool | str],
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _report(liveness)

    async def readyz(_: web.Request) -> web.Response:
        return _report(readiness, leader=leadership())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler())
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application, addr: str) -> AsyncIterator[int]:
    """Serve `app` on `addr` while inside; yield the bound port (useful with port 0)."""
    host, port = parse_addr(addr)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield int(bound)
    finally:
        await runner.cleanup()
