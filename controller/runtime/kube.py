"""kr8s `Api` construction: timeouts, an explicit namespace and client-side QPS/burst.

kr8s 0.20.15 has no client timeouts (`httpx.AsyncClient(timeout=None)`), no
request rate limit, caches instances per (thread, loop, kwargs) in a weak
dictionary, and in-cluster never reads the service-account namespace. So every
`Api` of the process is built here, directly (`bypass_factory=True`, so two
callers never share one by accident), with a default timeout and the
namespace given explicitly from the downward API.

`RateLimitedApi` is client-go's `--kube-api-qps`/`--kube-api-burst`: every
request (kr8s object helpers included, they all go through `call_api`) first
takes a token from a bucket and waits when the bucket is in debt. The
informers and the leader elector get their own `Api` instances: a 401/403
makes kr8s close and rebuild its shared httpx client, which would kill every
watch on it, and a lease renewal must never queue behind a burst of reconciles.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import httpx
from kr8s._api import Api

from controller.runtime.ratelimit import BucketLimiter

#: deadline of ordinary requests; watches pass their own
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ClientRateLimiter:
    """Waits for a token of a QPS/burst bucket before each request."""

    def __init__(self, *, qps: float, burst: int) -> None:
        self._bucket = BucketLimiter(qps=qps, burst=burst)

    async def acquire(self) -> None:
        delay = self._bucket.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


class RateLimitedApi(Api):
    """A kr8s `Api` whose every request first waits for a rate-limit token."""

    rate_limiter: ClientRateLimiter | None = None

    @contextlib.asynccontextmanager
    async def call_api(self, *args: Any, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        if self.rate_limiter is not None:
            await self.rate_limiter.acquire()
        async with super().call_api(*args, **kwargs) as response:
            yield response


def runtime_namespace(environ: Mapping[str, str]) -> str | None:
    """The controller's own namespace from the downward API, when running in a pod."""
    return environ.get("RUNTIME_NAMESPACE") or environ.get("POD_NAMESPACE") or None


async def connect(
    *,
    qps: float | None,
    burst: int | None,
    namespace: str | None = None,
    url: str | None = None,
    kubeconfig: str | Mapping[str, Any] | None = None,
) -> RateLimitedApi:
    """A new authenticated `Api` (kubeconfig / `KUBECONFIG`, else in-cluster credentials)."""
    api = RateLimitedApi(bypass_factory=True, url=url, kubeconfig=kubeconfig, namespace=namespace)
    api.timeout = REQUEST_TIMEOUT
    if qps is not None and burst is not None:
        api.rate_limiter = ClientRateLimiter(qps=qps, burst=burst)
    await api
    return api


async def close(api: Api) -> None:
    """Close the `Api`'s pooled connections."""
    session = getattr(api, "_session", None)
    if session is not None:
        await session.aclose()


@attrs.frozen
class KubeApis:
    """The process's `Api` instances: reconciler writes, informers, leader election."""

    main: RateLimitedApi
    informers: RateLimitedApi
    leader: RateLimitedApi

    @classmethod
    async def connect(
        cls,
        *,
        qps: float,
        burst: int,
        environ: Mapping[str, str],
        url: str | None = None,
        kubeconfig: str | Mapping[str, Any] | None = None,
    ) -> KubeApis:
        """Three isolated `Api`s; in a pod the namespace comes from the downward API."""
        common: dict[str, Any] = {
            "namespace": runtime_namespace(environ),
            "url": url,
            "kubeconfig": kubeconfig,
        }
        return cls(
            main=await connect(qps=qps, burst=burst, **common),
            informers=await connect(qps=qps, burst=burst, **common),
            leader=await connect(qps=None, burst=None, **common),
        )

    async def aclose(self) -> None:
        for api in (self.main, self.informers, self.leader):
            await close(api)
