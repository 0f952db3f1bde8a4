"""Stream a response body into a size-limited spooled temporary file.

Bodies can be up to `--max-artifact-size` (100 MiB by default) and thousands
of sources share one process, so a body is never held whole in memory: it is
written chunk by chunk to a `SpooledTemporaryFile` that stays in memory up to
`--spool-memory-threshold` and then rolls over to an unlinked file in
`--spool-dir`. The limit is checked against the declared length before the
first byte is read and against the running count while streaming (a chunked
or compressed body declares nothing trustworthy); on any failure, including
cancellation, the file is closed, which frees its memory or disk space.
Any generator that streams bytes (HTTP, S3, …) uses this.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterable
from typing import IO

from generators import reasons
from generators.base import FetchError, GeneratorSettings


async def spool(
    chunks: AsyncIterable[bytes],
    *,
    settings: GeneratorSettings,
    declared_length: int | None,
    where: str,
) -> tuple[IO[bytes], int]:
    """Write `chunks` to a new spooled file; returns it (at offset 0) and its size."""
    limit = settings.max_body_size
    if declared_length is not None and declared_length > limit:
        raise too_large(where=where, limit=limit)
    body: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - ownership passes to the caller
        max_size=settings.spool_memory_threshold, dir=settings.spool_dir
    )
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(where=where, limit=limit)
            body.write(chunk)
        body.seek(0)
    except BaseException:
        body.close()
        raise
    return body, size


def too_large(*, where: str, limit: int) -> FetchError:
    return FetchError(
        f"{where}: response body exceeds the limit of {limit} bytes (--max-artifact-size)",
        reason=reasons.RESPONSE_TOO_LARGE,
        transient=False,
    )
