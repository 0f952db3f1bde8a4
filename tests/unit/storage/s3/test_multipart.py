"""Large artifacts go up in parts (never whole in memory); failures leave no upload behind."""

from __future__ import annotations

import hashlib
import io
import os
from typing import IO

import pytest

from storage.backend import StorageError
from tests.fixtures.s3 import MotoServer
from tests.unit.storage.s3.conftest import MakeBackend

MIB = 1024 * 1024
KEY = "externalsource/default/big/" + "b" * 64 + ".tar.gz"


def _multipart_parts(server: MotoServer, bucket: str, key: str) -> int:
    """The part count S3 encodes in a multipart object's ETag ("<md5>-<parts>"), 0 if single."""
    etag = server.client("s3").head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    return int(etag.rpartition("-")[2]) if "-" in etag else 0


@pytest.mark.slow
async def test_large_artifact_is_uploaded_in_parts(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_part_size=5 * MIB, s3_upload_concurrency=2)
    body = os.urandom(20 * MIB + 123)

    assert await backend.put(KEY, io.BytesIO(body)) == len(body)

    assert _multipart_parts(moto_server, s3_bucket, KEY) == 5
    digest = hashlib.sha256()
    async for chunk in backend.open(KEY):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(body).hexdigest()
    assert (await backend.stat(KEY)).size == len(body)  # type: ignore[union-attr]


async def test_artifact_below_the_part_size_is_one_request(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_part_size=5 * MIB)

    await backend.put(KEY, io.BytesIO(b"z" * (5 * MIB - 1)))

    assert _multipart_parts(moto_server, s3_bucket, KEY) == 0


async def test_artifact_of_exactly_one_part(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_part_size=5 * MIB)
    body = os.urandom(5 * MIB)

    assert await backend.put(KEY, io.BytesIO(body)) == len(body)

    assert _multipart_parts(moto_server, s3_bucket, KEY) == 1
    assert b"".join([c async for c in backend.open(KEY)]) == body


class _FailingSource(io.RawIOBase):
    """A source that breaks after `good` bytes (a disk error while reading the spool)."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise OSError(5, "Input/output error")
        n = min(len(buffer), self._left)
        buffer[:n] = b"q" * n
        self._left -= n
        return n


@pytest.mark.slow
async def test_failed_upload_is_aborted_and_leaves_nothing(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_part_size=5 * MIB)
    source: IO[bytes] = io.BufferedReader(_FailingSource(12 * MIB))

    with pytest.raises(StorageError) as caught:
        await backend.put(KEY, source)

    assert caught.value.transient is True
    assert "Input/output error" in caught.value.message
    client = moto_server.client("s3")
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert await backend.stat(KEY) is None
