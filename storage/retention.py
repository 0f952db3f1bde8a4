"""Retention: garbage-collect a source's superseded artifacts, and delete a source's all.

Rule (SPEC §4 step 13, Flux `--artifact-retention-*` semantics): after a new
artifact is stored, the source's artifacts are ranked newest first by
modification time; an artifact is kept when it is among the `keep_records`
newest (the current one counts as one of them, as in Flux, so the default 2
keeps the current artifact plus the previous one) *and* not older than
`ttl`. The current artifact is never deleted, whatever its rank or age. So a
consumer that read the previous URL a moment ago can still download it, and
once the TTL has passed only the current artifact remains.

Deletes are not atomic as a group: a failure leaves some old artifacts, which
the next collection removes.
"""

from __future__ import annotations

import datetime

import structlog

from storage.backend import StorageBackend
from storage.naming import source_prefix

log = structlog.get_logger(__name__)


async def collect_garbage(
    backend: StorageBackend,
    *,
    namespace: str,
    name: str,
    current_key: str,
    keep_records: int,
    ttl: float,
    now: datetime.datetime | None = None,
) -> list[str]:
    """Delete the source's artifacts outside the retention window; return the deleted keys."""
    now = now or datetime.datetime.now(datetime.UTC)
    objects = await backend.list(source_prefix(namespace, name))
    newest_first = sorted(objects, key=lambda o: (o.modified, o.key), reverse=True)
    deleted: list[str] = []
    for rank, obj in enumerate(newest_first):
        if obj.key == current_key:
            continue
        age = (now - obj.modified).total_seconds()
        if rank < keep_records and age <= ttl:
            continue
        await backend.delete(obj.key)
        deleted.append(obj.key)
    if deleted:
        log.debug(
            "superseded artifacts removed", count=len(deleted), kept=len(objects) - len(deleted)
        )
    return deleted


async def delete_source(backend: StorageBackend, *, namespace: str, name: str) -> list[str]:
    """Delete every artifact of one source (the finalizer's storage step); return the keys."""
    objects = await backend.list(source_prefix(namespace, name))
    for obj in objects:
        await backend.delete(obj.key)
    return [obj.key for obj in objects]
