"""Retention: garbage-collect a source's superseded artifacts, and delete a source's all.

Rule (docs/architecture.md, step 13, with Flux's `--artifact-retention-*`
semantics): the current artifact is always kept and counts as one of
`keep_records` (as in Flux, so the default 2 keeps the current artifact plus
the previous one); the remaining `keep_records - 1` places go to the newest
other artifacts (by modification time) that are not older than `ttl`;
everything else of the source is deleted. A consumer that read the previous
URL a moment ago can still download it, and once the TTL has passed only the
current artifact remains.

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
    others = sorted(
        (o for o in objects if o.key != current_key),
        key=lambda o: (o.modified, o.key),
        reverse=True,
    )
    places = max(keep_records - 1, 0)
    deleted: list[str] = []
    for obj in others:
        if places and (now - obj.modified).total_seconds() <= ttl:
            places -= 1
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
