"""The artifact HTTP server: read-only GET/HEAD of exact storage keys, streamed from any backend.

This is what Flux's kustomize-/helm-controllers download from (plain HTTP,
no auth; protected by a NetworkPolicy). It is shaped to have nothing to
exploit:

- the request target is checked *raw* (before any percent-decoding or
  normalisation by the HTTP stack) against a strict key grammar — letters,
  digits, ``.``, ``_``, ``~``, ``-`` in non-empty ``/``-separated segments,
  never ``.`` or ``..`` — so encoded ``..`` (``%2e%2e``), encoded slashes
  (``%2F``), double slashes, backslashes, NUL and absolute-form targets all
  end in 404 without touching storage;
- only exact keys are served: no directory listing, no index files, 404 for
  anything unknown; other methods get 405;
- bodies stream chunk by chunk from `backend.open` with Content-Length from
  `backend.stat`, ETag ``"sha256:<hex>"`` for ``<hex>.tar.gz`` keys
  (content-addressed, so the ETag is the digest consumers verify);
- a connection that sends no complete request within `idle_timeout` (an idle
  keep-alive connection, or a half-sent request) is closed: aiohttp's own
  default waits an hour, which lets a few clients hold sockets forever.

Every replica runs the server (docs/operations.md, "Replicas"): a key the
local backend does not hold is streamed from `upstream()` — the leader's
artifact server, when this replica is not the leader — by
`storage.forwarding`. Readiness is toggled with `set_serving`: while not
serving the server answers 503 to every request, including ``GET /``, which
answers 200 ``ok`` while serving; the Deployment's readiness probe is
``GET /`` on the artifact port (as in Flux). The controller marks a replica
serving when it can answer a download: it leads, its backend is shared, or
it knows the leader to forward to. A new server starts *not* serving.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import structlog
from aiohttp import web

from storage.backend import StorageBackend, StorageError
from storage.forwarding import FORWARDED_HEADER, Forwarder
from storage.naming import check_key, digest_hex_of_key

log = structlog.get_logger(__name__)

_KEY_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*[A-Za-z0-9._~-]+")
_ALLOWED_METHODS = ("GET", "HEAD")
#: seconds a connection may stay without a complete request (idle or half-sent)
DEFAULT_IDLE_TIMEOUT = 15.0


def key_from_target(raw_target: str) -> str | None:
    """The storage key a raw request target names, or None when it names no valid key."""
    path = raw_target.partition("?")[0]
    if not _KEY_PATH.fullmatch(path):
        return None
    try:
        return check_key(path[1:])
    except ValueError:
        return None


async def _aclose(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class ArtifactServer:
    """Serves one backend's objects over HTTP on `host`:`port` (port 0 picks a free port)."""

    def __init__(
        self,
        backend: StorageBackend,
        *,
        host: str | None,
        port: int,
        serving: bool = False,
        shutdown_timeout: float = 5.0,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        upstream: Callable[[], str | None] | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self._backend = backend
        self._host = host
        self._port = port
        self._serving = serving
        self._shutdown_timeout = shutdown_timeout
        self._idle_timeout = idle_timeout
        self._runner: web.AppRunner | None = None
        self._upstream = upstream
        self._ready = ready
        self._forwarder = Forwarder()
        self._bound_port: int | None = None

    @property
    def serving(self) -> bool:
        """Whether downloads are answered (`ready()` when given, else `set_serving`)."""
        return self._ready() if self._ready is not None else self._serving

    def set_serving(self, serving: bool) -> None:
        """Serve artifacts (True, the leader) or answer 503 to everything (False)."""
        if serving != self._serving:
            log.info("artifact server readiness changed", serving=serving)
        self._serving = serving

    @property
    def port(self) -> int:
        """The bound port (meaningful after `start`)."""
        if self._bound_port is None:
            raise RuntimeError("artifact server is not started")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL for local clients, e.g. ``http://127.0.0.1:43123``."""
        host = self._host if self._host not in (None, "", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        assert host is not None
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout,
            # aiohttp arms this timer when a connection opens and re-arms it after
            # each response: it closes idle and half-sent-request connections alike
            keepalive_timeout=self._idle_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = runner.addresses[0][1]
        log.info("artifact server listening", host=self._host or "*", port=self._bound_port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self._forwarder.aclose()

    async def __aenter__(self) -> ArtifactServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self.serving:
            return web.Response(status=503, text="not ready: cannot answer downloads yet\n")
        if request.method not in _ALLOWED_METHODS:
            return web.Response(status=405, headers={"Allow": ", ".join(_ALLOWED_METHODS)})
        if request.raw_path.partition("?")[0] == "/":
            return web.Response(text="ok\n")
        key = key_from_target(request.raw_path)
        if key is None:
            return web.Response(status=404, text="not found\n")
        return await self._serve(request, key)

    async def _serve(self, request: web.Request, key: str) -> web.StreamResponse:
        try:
            info = await self._backend.stat(key)
        except StorageError as exc:
            log.warning("artifact not served", path=key, error=exc.message)
            return web.Response(status=500, text="storage error\n")
        if info is None:
            base = self._upstream() if self._upstream is not None else None
            if base and FORWARDED_HEADER not in request.headers:
                return await self._forwarder.forward(request, base)
            return web.Response(status=404, text="not found\n")
        headers = {"Content-Type": "application/octet-stream", "X-Content-Type-Options": "nosniff"}
        hex_digest = digest_hex_of_key(key)
        if hex_digest is not None:
            headers["Content-Type"] = "application/gzip"
            headers["ETag"] = f'"sha256:{hex_digest}"'
        response = web.StreamResponse(headers=headers)
        response.content_length = info.size
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        stream = self._backend.open(key)
        try:
            # Read the first chunk before sending headers: a key deleted since `stat`
            # (garbage collection) still gets a clean 404 instead of a truncated 200.
            try:
                first = await anext(stream, b"")
            except KeyError:
                return web.Response(status=404, text="not found\n")
            except StorageError as exc:
                log.warning("artifact not served", path=key, error=exc.message)
                return web.Response(status=500, text="storage error\n")
            await response.prepare(request)
            await response.write(first)
            try:
                async for chunk in stream:
                    await response.write(chunk)
            except StorageError as exc:
                # Headers are sent: raising makes aiohttp drop the connection, so the
                # consumer sees a short body (Content-Length) rather than a wrong one.
                log.warning("artifact stream interrupted", path=key, error=exc.message)
                raise
        finally:
            await _aclose(stream)
        await response.write_eof()
        return response
