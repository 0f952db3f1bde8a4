"""The `s3` backend: artifacts as objects in an S3-compatible bucket (AWS S3, MinIO, …).

One aiobotocore client per backend, created on first use (it must be built
inside the running event loop) and shared by every operation; botocore's
"standard" retry mode retries throttling, 5xx and connection errors with
exponential backoff and full jitter (`--s3-max-attempts`), and every request
has connect/read timeouts (`--s3-timeout`). What still fails is classified by
`storage.s3_errors` (transient vs configuration).

Keys are the backend-neutral keys of `storage.naming`, stored under
`--s3-prefix`; the prefix is added and stripped here and nobody else sees it.
Writes stream through `storage.s3_upload` (multipart above `--s3-part-size`),
reads stream `GetObject`'s body chunk by chunk, so neither direction holds a
whole artifact in memory. Checksums are only sent where S3 requires them
(botocore's newer default of always sending CRC trailers is refused by several
S3-compatible servers).

With `--s3-credentials-dir`, the Secret's two small files are re-read before
each operation; when they changed (a rotated Secret) the operation gets a new
client, while streams already open finish on the old one (closed by `aclose`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import IO, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from storage import reasons, s3_errors
from storage.backend import ObjectInfo, StorageBackend, StorageError
from storage.naming import check_key
from storage.s3_settings import S3Settings, static_credentials
from storage.s3_upload import upload

__all__ = ["S3Backend", "S3Settings"]

CHUNK_SIZE = 1024 * 1024
_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)


class S3Backend(StorageBackend):
    """Stores artifacts in `--s3-bucket` under `--s3-prefix`."""

    name = "s3"
    persistent = True
    shared = True

    def __init__(self, settings: S3Settings, *, list_page_size: int = 1000) -> None:
        if not settings.s3_bucket:
            raise StorageError(
                "the s3 storage backend needs a bucket (--s3-bucket)",
                reason=reasons.REQUEST_REJECTED,
                transient=False,
            )
        self._settings = settings
        self._bucket = settings.s3_bucket
        self._prefix = settings.key_prefix()
        self._endpoint = settings.s3_endpoint or f"AWS S3 ({settings.s3_region})"
        self._page_size = list_page_size
        self._session = get_session()
        self._lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._credentials: tuple[str, str] | None = None

    async def put(self, key: str, source: IO[bytes]) -> int:
        full = self._full(key)
        client = await self._client_for("put")
        try:
            return await upload(
                client,
                bucket=self._bucket,
                key=full,
                source=source,
                part_size=self._settings.s3_part_size,
                concurrency=self._settings.s3_upload_concurrency,
            )
        except _FAILURES as exc:
            raise self._error(exc, "put") from None

    async def open(self, key: str) -> AsyncIterator[bytes]:
        full = self._full(key)
        client = await self._client_for("get")
        try:
            response = await client.get_object(Bucket=self._bucket, Key=full)
        except ClientError as exc:
            if s3_errors.is_not_found(exc):
                raise KeyError(key) from None
            raise self._error(exc, "get") from None
        except _FAILURES as exc:
            raise self._error(exc, "get") from None
        async with response["Body"] as body:
            try:
                async for chunk in body.iter_chunks(CHUNK_SIZE):
                    yield chunk
            except _FAILURES as exc:
                raise self._error(exc, "get") from None

    async def stat(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        client = await self._client_for("head")
        try:
            head = await client.head_object(Bucket=self._bucket, Key=full)
        except ClientError as exc:
            if s3_errors.is_not_found(exc):
                return None
            raise self._error(exc, "head") from None
        except _FAILURES as exc:
            raise self._error(exc, "head") from None
        return ObjectInfo(key=key, size=int(head["ContentLength"]), modified=head["LastModified"])

    async def list(self, prefix: str) -> list[ObjectInfo]:
        client = await self._client_for("list")
        found: list[ObjectInfo] = []
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket,
                Prefix=self._prefix + prefix,
                PaginationConfig={"PageSize": self._page_size},
            )
            async for page in pages:
                found.extend(
                    ObjectInfo(
                        key=item["Key"][len(self._prefix) :],
                        size=int(item["Size"]),
                        modified=item["LastModified"],
                    )
                    for item in page.get("Contents", ())
                )
        except _FAILURES as exc:
            raise self._error(exc, "list") from None
        return sorted(found, key=lambda info: info.key)

    async def delete(self, key: str) -> None:
        full = self._full(key)
        client = await self._client_for("delete")
        try:
            await client.delete_object(Bucket=self._bucket, Key=full)
        except _FAILURES as exc:
            raise self._error(exc, "delete") from None

    async def check(self) -> None:
        """Start-up check: the bucket is reachable and we may write, read, list and delete.

        Raises one `StorageError` whose message is a single line naming the
        bucket, the endpoint and what is wrong.
        """
        probe = f".externalsource-check-{uuid.uuid4().hex}"
        try:
            client = await self._client_for("check")
            try:
                await client.put_object(Bucket=self._bucket, Key=self._prefix + probe, Body=b"ok")
                await client.head_object(Bucket=self._bucket, Key=self._prefix + probe)
                await client.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix, MaxKeys=1)
                await client.delete_object(Bucket=self._bucket, Key=self._prefix + probe)
            except _FAILURES as exc:
                raise self._error(exc, "write check") from None
        except StorageError as exc:
            raise StorageError(
                f"storage check failed: {exc.message}", reason=exc.reason, transient=exc.transient
            ) from None

    async def aclose(self) -> None:
        async with self._lock:
            self._client = None
            await self._stack.aclose()

    def _full(self, key: str) -> str:
        try:
            return self._prefix + check_key(key)
        except ValueError as exc:
            raise StorageError(str(exc), reason=reasons.INVALID_KEY, transient=False) from None

    async def _client_for(self, operation: str) -> Any:
        async with self._lock:
            try:
                credentials = static_credentials(self._settings)
                if self._client is None or credentials != self._credentials:
                    self._client = await self._new_client(credentials)
            except StorageError as exc:
                raise StorageError(
                    f"S3 {operation} in bucket {self._bucket!r} at {self._endpoint}: {exc.message}",
                    reason=exc.reason,
                    transient=exc.transient,
                ) from None
            return self._client

    async def _new_client(self, credentials: tuple[str, str] | None) -> Any:
        settings = self._settings
        config = AioConfig(
            connect_timeout=settings.s3_timeout,
            read_timeout=settings.s3_timeout,
            retries={"mode": "standard", "max_attempts": settings.s3_max_attempts},
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
            max_pool_connections=max(10, 2 * settings.s3_upload_concurrency),
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        keys: dict[str, str] = {}
        if credentials is not None:
            keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
        client = await self._stack.enter_async_context(
            self._session.create_client(
                "s3",
                endpoint_url=settings.s3_endpoint or None,
                region_name=settings.s3_region,
                verify=settings.verify(),
                config=config,
                **keys,
            )
        )
        # botocore asks for `Expect: 100-continue` on uploads and aiohttp then waits for the
        # interim answer with no timeout at all: a hung server would hang every upload.
        client.meta.events.register_last("before-call.s3", _no_expect_continue)
        self._credentials = credentials
        return client

    def _error(self, exc: Exception, operation: str) -> StorageError:
        return s3_errors.classify(
            exc, operation=operation, bucket=self._bucket, endpoint=self._endpoint
        )


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """Drop the `Expect: 100-continue` botocore adds to uploads (see `_new_client`)."""
    params.get("headers", {}).pop("Expect", None)
