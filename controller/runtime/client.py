"""The one door to the Kubernetes API: every request of the process goes through `KubeClient`.

kr8s does what it is good at: reading a kubeconfig (contexts, exec plugins,
embedded certificates) or the in-cluster service account into credentials,
and re-reading them. The requests themselves go over aiohttp, our HTTP stack
everywhere else: a pooled keep-alive connector, no per-request URL/cookie
machinery, streamed watch bodies (docs/benchmarks.md has the side-by-side
numbers against kr8s's httpx transport). On top, what a controller needs and
kr8s lacks:

* **Credentials that rotate.** A 401 re-reads them (the service-account token
  file, the kubeconfig) once per rotation, however many requests saw the 401
  at the same time, and the request is retried once. A second 401 is an
  `ApiError` like any other: transient, retried by the caller's backoff.
* **Errors that say what to do.** `ApiError` carries the HTTP status, a
  message naming verb, kind and object (a 403 says which RBAC verb is
  missing), a reason, `transient` and `retry_after` (429's Retry-After). Only
  a 4xx that a retry cannot fix (400, 404, 409, 422 …) is not transient.
* **Client-side rate limiting as Flux does it.** `--kube-api-qps/burst`
  apply until the API server shows it runs API Priority and Fairness (the
  `X-Kubernetes-PF-*` response headers); then the client-side limiter is off,
  unless the flags were given explicitly.
* **`fieldManager=externalsource-controller`** on every write. No
  `fieldValidation` parameter: `Ignore` was measured and saves the API server
  no CPU (docs/benchmarks.md, "fieldValidation"), so the server's default
  (`Warn`) stays.
* **Isolation.** `clone()` gives a client with its own connection pool and
  the same credentials and limiter: each informer and the elector have one,
  so a slow or broken stream never queues behind, or takes down, another.

Every request has a deadline: `REQUEST_TIMEOUT` unless the caller passes one
(watches pass the server timeout plus a margin).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import pathlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import structlog
from kr8s.asyncio import Api as Kr8sApi

from controller.api import reasons
from controller.api.names import FIELD_MANAGER, Resource
from controller.runtime import metrics
from controller.runtime.ratelimit import BucketLimiter

log = structlog.get_logger(__name__)

JSON = dict[str, Any]

#: deadline of ordinary requests; watches pass their own
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30.0, connect=10.0)
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_APF_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
_MAX_LINE = 64 * 1024 * 1024  # a watch event larger than this is garbage
_VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


class ApiError(Exception):
    """A Kubernetes API call failed; `transient` says whether a retry can help."""

    reason = reasons.API_ERROR

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Transport errors, 401/403 (credentials and RBAC get fixed), 429 and 5xx."""
        return self.status is None or self.status >= 500 or self.status in (401, 403, 429)


class CredentialsError(Exception):
    """No usable credentials at start-up (one line for the user)."""


class Credentials:
    """kr8s's credentials for the process, re-read at most once per rotation."""

    def __init__(self, auth: Any) -> None:
        self._auth = auth
        self._lock = asyncio.Lock()
        self.generation = 0
        #: changes only when the TLS material does: pooled connections are rebuilt then only
        self.tls_generation = 0
        self._ssl: ssl.SSLContext | bool = True
        self._tls_digest = ""

    @classmethod
    async def load(
        cls,
        *,
        url: str | None = None,
        kubeconfig: str | Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> Credentials:
        """From a kubeconfig (or `KUBECONFIG`), else the in-cluster service account."""
        # kr8s's Api is only the holder of its KubeAuth here: no request, no version check
        holder = Kr8sApi(bypass_factory=True, url=url, kubeconfig=kubeconfig, namespace=namespace)
        credentials = cls(holder.auth)
        try:
            await credentials._auth.reauthenticate()
            credentials._ssl = await credentials._auth.ssl_context()
            credentials._tls_digest = credentials._tls_material()
        except (OSError, ValueError, KeyError, ssl.SSLError) as exc:
            raise CredentialsError(
                f"no usable Kubernetes credentials ({exc}): set KUBECONFIG to a kubeconfig "
                "file, or run in a pod with a service account"
            ) from None
        return credentials

    @property
    def server(self) -> str:
        return str(self._auth.server).rstrip("/")

    @property
    def namespace(self) -> str:
        return str(self._auth.namespace)

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        return self._ssl

    def headers(self) -> dict[str, str]:
        token = self._auth.token
        return {"Authorization": f"Bearer {token.strip()}"} if token else {}

    async def refresh(self, seen: int) -> None:
        """Re-read the credentials unless someone did since generation `seen`."""
        async with self._lock:
            if self.generation != seen:
                return
            try:
                await self._auth.reauthenticate()
                digest = self._tls_material()
                if digest != self._tls_digest:  # a rotated client certificate or CA
                    self._ssl = await self._auth.ssl_context()
                    self._tls_digest = digest
                    self.tls_generation += 1
            except (OSError, ValueError, KeyError, ssl.SSLError) as exc:
                log.warning("could not re-read Kubernetes credentials", error=type(exc).__name__)
            self.generation += 1
            log.info("Kubernetes credentials re-read after 401")

    def _tls_material(self) -> str:
        """A digest of the client certificate, key and CA as they are now (never logged)."""
        digest = hashlib.sha256(str(self._auth._insecure_skip_tls_verify).encode())
        for path in (
            self._auth.client_cert_file,
            self._auth.client_key_file,
            self._auth.server_ca_file,
        ):
            digest.update(pathlib.Path(path).read_bytes() if path else b"-")
        return digest.hexdigest()


class ClientRateLimiter:
    """client-go's QPS/burst bucket, switched off once the server shows it runs APF."""

    def __init__(self, *, qps: float, burst: int, explicit: bool) -> None:
        self._bucket = BucketLimiter(qps=qps, burst=burst)
        self.explicit = explicit
        self.enabled = True

    async def acquire(self) -> None:
        if not self.enabled:
            return
        delay = self._bucket.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def observe(self, headers: Mapping[str, str]) -> None:
        if self.enabled and not self.explicit and _APF_HEADER in headers:
            self.enabled = False
            log.info("API Priority and Fairness detected; client-side rate limit off")


class KubeClient:
    """CRUD, lists and watches through one authenticated, pooled aiohttp session."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        limiter: ClientRateLimiter | None = None,
        name: str = "main",
    ) -> None:
        self.credentials = credentials
        self.limiter = limiter
        self.name = name
        self._session: aiohttp.ClientSession | None = None
        self._session_generation = -1

    @property
    def namespace(self) -> str:
        """The default namespace of the credentials (kubeconfig context or service account)."""
        return self.credentials.namespace

    def clone(self, name: str, *, limited: bool = True) -> KubeClient:
        """Same credentials (and limiter), its own connection pool."""
        return KubeClient(self.credentials, limiter=self.limiter if limited else None, name=name)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        return await self._json("GET", resource, namespace, name, missing_ok=True)

    async def create(self, resource: Resource, namespace: str, body: JSON) -> JSON:
        result = await self._json("POST", resource, namespace, "", body=body)
        assert result is not None
        return result

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: JSON | list[JSON],
        *,
        subresource: str = "",
    ) -> JSON:
        """Merge patch for a dict, JSON patch (RFC 6902) for a list."""
        content_type = JSON_PATCH if isinstance(patch, list) else MERGE_PATCH
        result = await self._json(
            "PATCH",
            resource,
            namespace,
            name,
            body=patch,
            subresource=subresource,
            content_type=content_type,
        )
        assert result is not None
        return result

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete; an object that is already gone is not an error."""
        await self._json("DELETE", resource, namespace, name, missing_ok=True)

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        params: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> JSON:
        """One page of a LIST (the caller follows `metadata.continue`)."""
        result = await self._json(
            "GET", resource, namespace, "", params=params, timeout=timeout or REQUEST_TIMEOUT
        )
        assert result is not None
        return result

    @contextlib.asynccontextmanager
    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        params: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[AsyncIterator[JSON]]:
        """A WATCH stream: yields an iterator of decoded events until the server ends it."""
        path = resource.path(namespace)
        async with self._request(
            "GET", path, what=f"WATCH {resource.kind}", params=params, timeout=timeout
        ) as response:
            yield _events(response)

    async def _json(
        self,
        method: str,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        body: Any = None,
        subresource: str = "",
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
    ) -> JSON | None:
        what = f"{_VERBS.get(method, method)} {resource.kind}"
        if subresource:
            what += f"/{subresource}"
        if namespace or name:
            what += f" {namespace or '-'}/{name or '-'}"
        query = dict(params or {})
        if method in ("POST", "PATCH", "PUT"):
            query["fieldManager"] = FIELD_MANAGER
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        path = resource.path(namespace, name, subresource)
        try:
            async with self._request(
                method,
                path,
                what=what,
                params=query,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as response:
                result: JSON = await response.json(content_type=None)
                return result
        except ApiError as err:
            if missing_ok and err.status == 404:
                return None
            raise

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request, retried once after re-reading credentials on a 401."""
        for attempt in (1, 2):
            if self.limiter is not None:
                await self.limiter.acquire()
            seen = self.credentials.generation
            session = await self._ensure_session()
            answered = False
            try:
                async with session.request(
                    method,
                    self.credentials.server + path,
                    params=params,
                    data=data,
                    headers={**self.credentials.headers(), **(headers or {})},
                    timeout=timeout,
                ) as response:
                    metrics.REST_CLIENT_REQUESTS.labels(
                        code=str(response.status), method=method
                    ).inc()
                    if self.limiter is not None:
                        self.limiter.observe(response.headers)
                    if response.status == 401 and attempt == 1:
                        await self.credentials.refresh(seen)
                        continue
                    if response.status >= 400:
                        raise await _error(response, what)
                    answered = True
                    yield response
                    return
            except (aiohttp.ClientError, TimeoutError) as exc:
                if answered and not isinstance(exc, aiohttp.ClientError):
                    raise  # the caller's own deadline (e.g. a watch's inactivity timeout)
                metrics.REST_CLIENT_REQUESTS.labels(code="<error>", method=method).inc()
                raise ApiError(f"{what}: {type(exc).__name__}") from exc

    async def _ensure_session(self) -> aiohttp.ClientSession:
        """The pooled session, rebuilt when the TLS material changed (a new token needs none)."""
        if self._session is None or self._session_generation != self.credentials.tls_generation:
            if self._session is not None:
                await self._session.close()
            connector = aiohttp.TCPConnector(
                ssl=self.credentials.ssl, limit=0, keepalive_timeout=60, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={
                    "Accept": "application/json",
                    "User-Agent": f"{FIELD_MANAGER}/{self.name}",
                },
                skip_auto_headers=("Accept-Encoding",),
            )
            self._session_generation = self.credentials.tls_generation
        return self._session


async def _error(response: aiohttp.ClientResponse, what: str) -> ApiError:
    """An ApiError with the API server's Status message (never the request body)."""
    status = response.status
    detail = f"HTTP {status}"
    try:
        payload = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        payload = None
    if isinstance(payload, Mapping) and payload.get("message"):
        detail = f"HTTP {status}: {str(payload['message'])[:300]}"
    if status == 403:
        detail += " (RBAC: the controller's ServiceAccount lacks this permission)"
    retry_after = None
    if status == 429:
        with contextlib.suppress(ValueError):
            retry_after = float(response.headers.get("Retry-After", "1"))
    return ApiError(f"{what}: {detail}", status=status, retry_after=retry_after)


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[JSON]:
    """Newline-delimited JSON watch events, however the bytes are chunked."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        while True:
            line, newline, rest = buffer.partition(b"\n")
            if not newline:
                break
            buffer = rest
            if line.strip():
                yield json.loads(line)
        if len(buffer) > _MAX_LINE:
            raise ApiError(f"watch event larger than {_MAX_LINE} bytes")
    if buffer.strip():
        yield json.loads(buffer)
