"""The `s3` generator: one object from an S3-compatible bucket, conditional on its ETag.

Conditional fetch: with a previous ETag, a HEAD goes first and an unchanged
ETag answers `NotModified` without a body (the fast path: one small request,
and it works on S3-compatible servers that ignore conditional GETs). Otherwise
a GET carrying `If-None-Match` follows — a 304 there (the object changed back,
or HEAD was refused with a 4xx) is `NotModified` too. A HEAD 4xx is not
reported as such: the GET that follows gets the precise error (HEAD answers
have no body, so a missing bucket and a missing key look the same there).

The body is streamed to a size-limited spooled file (`generators.spool`), with
`ContentLength` checked before the first byte. Credentials come from the
request (the source's Secret) or, when it has none, from the controller's own
AWS credential chain. The whole fetch runs under `S3ObjectRequest.timeout`;
botocore retries throttling, 5xx and connection errors inside it.
"""

from __future__ import annotations

import datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import anyio
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from generators import http_errors, reasons, s3_errors
from generators.address_guard import refusal
from generators.base import (
    Fetched,
    FetchError,
    FetchResult,
    GeneratorSettings,
    NotModified,
    SourceGenerator,
    Validators,
)
from generators.requests import S3ObjectRequest
from generators.s3_clients import ClientPool, endpoint_host
from generators.spool import spool
from s3common import error_code

log = structlog.get_logger(__name__)

CHUNK_SIZE = 64 * 1024
_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, OSError)


class S3Generator(SourceGenerator):
    """Fetches `S3ObjectRequest`s; one instance serves every s3 source of the process."""

    type_name = "s3"
    supports_conditional_fetch = True

    def __init__(self, settings: GeneratorSettings) -> None:
        self._settings = settings
        self._pool = ClientPool(
            allow_link_local=settings.allow_link_local,
            allow_loopback=settings.allow_loopback,
            temp_dir=settings.spool_dir,
        )

    async def fetch(self, config: Any, previous: Validators | None = None) -> FetchResult:
        if not isinstance(config, S3ObjectRequest):
            raise FetchError(
                f"the s3 generator cannot fetch a {type(config).__name__}",
                reason=reasons.INVALID_REQUEST,
                transient=False,
            )
        where = _where(config)
        self._validate(config, where=where)
        try:
            with anyio.fail_after(config.timeout):
                async with self._pool.lease(config) as client:
                    result = await _Exchange(
                        client=client, request=config, settings=self._settings, where=where
                    ).run(previous)
        except TimeoutError:
            raise FetchError(
                f"{where}: no answer within {config.timeout:g}s", reason=reasons.TIMEOUT
            ) from None
        log.debug("s3 fetch done", where=where, modified=isinstance(result, Fetched))
        return result

    async def aclose(self) -> None:
        await self._pool.aclose()

    def _validate(self, request: S3ObjectRequest, *, where: str) -> None:
        problem = None
        if not request.bucket or not request.key:
            problem = "bucket and key are required"
        elif bool(request.access_key) != bool(request.secret_key):
            problem = "the credentials Secret needs both accesskey and secretkey"
        elif request.endpoint and endpoint_host(request.endpoint) is None:
            problem = "the endpoint must be an http:// or https:// URL"
        if problem:
            raise FetchError(f"{where}: {problem}", reason=reasons.INVALID_REQUEST, transient=False)
        host = endpoint_host(request.endpoint) if request.endpoint else None
        what = host and refusal(
            host,
            allow_link_local=self._settings.allow_link_local,
            allow_loopback=self._settings.allow_loopback,
        )
        if host and what:
            raise http_errors.address_refused(where=where, host=host, what=what)


def _where(request: S3ObjectRequest) -> str:
    where = f"s3://{request.bucket}/{request.key}"
    if request.endpoint:
        where += f" at {http_errors.redact_url(request.endpoint)}"
    return where


def _validators(answer: dict[str, Any]) -> Validators:
    modified = answer.get("LastModified")
    last_modified = None
    if isinstance(modified, datetime.datetime):
        last_modified = format_datetime(modified.astimezone(datetime.UTC), usegmt=True)
    return Validators(etag=answer.get("ETag"), last_modified=last_modified)


class _Exchange:
    """One fetch: the HEAD/GET decision and the body."""

    def __init__(
        self, *, client: Any, request: S3ObjectRequest, settings: GeneratorSettings, where: str
    ) -> None:
        self._client = client
        self._target = {"Bucket": request.bucket, "Key": request.key}
        self._settings = settings
        self._where = where

    async def run(self, previous: Validators | None) -> FetchResult:
        if not previous or not previous.etag:
            return await self._get(previous=None)
        try:
            head = await self._client.head_object(**self._target)
        except ClientError as exc:
            if s3_errors.is_retryable(exc):
                raise s3_errors.classify(exc, where=self._where) from None
            return await self._get(previous=previous)
        except _FAILURES as exc:
            raise s3_errors.classify(exc, where=self._where) from None
        if head.get("ETag") == previous.etag:
            return NotModified(_validators(head))
        return await self._get(previous=previous)

    async def _get(self, *, previous: Validators | None) -> FetchResult:
        conditional = {"IfNoneMatch": previous.etag} if previous and previous.etag else {}
        try:
            answer = await self._client.get_object(**self._target, **conditional)
        except ClientError as exc:
            if previous and error_code(exc)[1] == 304:
                return NotModified(previous)
            raise s3_errors.classify(exc, where=self._where) from None
        except _FAILURES as exc:
            raise s3_errors.classify(exc, where=self._where) from None
        async with answer["Body"] as stream:
            try:
                body, size = await spool(
                    stream.iter_chunks(CHUNK_SIZE),
                    settings=self._settings,
                    declared_length=answer.get("ContentLength"),
                    where=self._where,
                )
            except _FAILURES as exc:
                raise s3_errors.classify(exc, where=self._where) from None
        validators = _validators(answer)
        metadata = {"etag": validators.etag, "last-modified": validators.last_modified}
        metadata["content-type"] = answer.get("ContentType")
        return Fetched(
            body=body,
            size=size,
            validators=validators,
            metadata={name: value for name, value in metadata.items() if value is not None},
        )
