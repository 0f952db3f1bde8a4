"""Streaming upload of one artifact to S3: one PutObject when small, multipart otherwise.

An artifact can be as large as `--max-artifact-size` and several sources may
upload at once, so the file is never read whole: parts of `--s3-part-size`
are read in a worker thread and up to `--s3-upload-concurrency` of them are
in flight; reading the next part waits for a free slot, which bounds memory
to about part size times concurrency per upload. S3 makes the object visible only
when the upload completes, so readers never see half an artifact; any failure
or cancellation aborts the upload (shielded, bounded in time) so that no
orphaned parts keep costing storage.
"""

from __future__ import annotations

from typing import IO, Any

import anyio
import anyio.to_thread
import structlog

log = structlog.get_logger(__name__)

#: how long an abort after a failure may take before we give up on it
ABORT_TIMEOUT = 30.0


def _read(source: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the file."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = source.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]


async def upload(
    client: Any, *, bucket: str, key: str, source: IO[bytes], part_size: int, concurrency: int
) -> int:
    """Upload the rest of `source` to `bucket`/`key`; returns the bytes uploaded."""
    first = await anyio.to_thread.run_sync(_read, source, part_size)
    if len(first) < part_size:
        await client.put_object(Bucket=bucket, Key=key, Body=first)
        return len(first)
    created = await client.create_multipart_upload(Bucket=bucket, Key=key)
    upload_id: str = created["UploadId"]
    try:
        try:
            parts, size = await _upload_parts(
                client,
                target={"Bucket": bucket, "Key": key, "UploadId": upload_id},
                source=source,
                first=first,
                part_size=part_size,
                concurrency=concurrency,
            )
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        await client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        with anyio.move_on_after(ABORT_TIMEOUT, shield=True):
            try:
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as exc:  # the original failure is the one to report
                log.warning("s3 multipart abort failed", key=key, error=type(exc).__name__)
        raise
    return size


async def _upload_parts(
    client: Any,
    *,
    target: dict[str, str],
    source: IO[bytes],
    first: bytes,
    part_size: int,
    concurrency: int,
) -> tuple[list[dict[str, Any]], int]:
    etags: dict[int, str] = {}
    slots = anyio.Semaphore(concurrency)

    async def send(number: int, data: bytes) -> None:
        try:
            answer = await client.upload_part(PartNumber=number, Body=data, **target)
            etags[number] = answer["ETag"]
        finally:
            slots.release()

    size = 0
    number = 1
    data = first
    async with anyio.create_task_group() as group:
        await slots.acquire()
        while data:
            size += len(data)
            group.start_soon(send, number, data)
            del data  # the task holds the only reference; memory goes when the part is sent
            await slots.acquire()
            data = await anyio.to_thread.run_sync(_read, source, part_size)
            number += 1
        slots.release()
    parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
    return parts, size
