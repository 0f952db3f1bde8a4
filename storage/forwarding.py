"""Forwarding a download this replica cannot serve to the replica that can.

Every replica answers downloads (the Service selects all pods). A follower
whose backend does not hold the object (the memory backend always, a
filesystem that is not shared) streams it from the leader instead, whose
address the controller learns from the Lease. Headers that matter to Flux's
fetcher (status, Content-Length, ETag, Content-Type) are passed through; the
body is streamed, never buffered. A forwarded request carries a header so it
is never forwarded again (no loops while leadership moves), and every
forward has a deadline: a dead leader costs a 502, not a hung consumer.
"""

from __future__ import annotations

import aiohttp
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

#: set on forwarded requests; a request carrying it is answered locally only
FORWARDED_HEADER = "X-Externalsource-Forwarded"
_PASSED = ("Content-Length", "Content-Type", "ETag", "X-Content-Type-Options")
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=30.0)


class Forwarder:
    """Streams GET/HEAD of one key from another artifact server."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(self, request: web.Request, base_url: str) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False)
        url = base_url.rstrip("/") + request.raw_path
        try:
            async with self._session.request(
                request.method, url, headers={FORWARDED_HEADER: "1"}, allow_redirects=False
            ) as upstream:
                headers = {h: upstream.headers[h] for h in _PASSED if h in upstream.headers}
                response = web.StreamResponse(status=upstream.status, headers=headers)
                await response.prepare(request)
                if request.method != "HEAD":
                    async for chunk in upstream.content.iter_chunked(64 * 1024):
                        await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("download not forwarded to the leader", error=type(exc).__name__)
            return web.Response(status=502, text="leader unreachable\n")
