"""Steps 12-13 of one reconcile (docs/architecture.md): the artifact in storage.

`ArtifactStore` stores a packaged artifact unless the same bytes are already
published and present, garbage-collects the source's older artifacts, and
remembers which published artifacts it knows to be in storage — checked once
per process with a `stat`, so the fast path costs no storage request, and a
restart of the memory backend (everything gone) is noticed and rebuilt. The
memory is bounded by sources x retention records and pruned on GC and deletion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from controller import conditions as cond
from controller.pipeline import Produced
from storage.backend import StorageBackend
from storage.naming import artifact_key, artifact_url, revision, source_prefix
from storage.retention import collect_garbage, delete_source

log = structlog.get_logger(__name__)

JSON = dict[str, Any]


@attrs.frozen
class Retention:
    """Where artifacts are advertised and how many superseded ones are kept, how long."""

    advertised_address: str
    records: int = 2
    ttl: float = 60.0


class ArtifactStore:
    def __init__(self, storage: StorageBackend, retention: Retention) -> None:
        self._storage = storage
        self._retention = retention
        # artifact key -> digest known to be in storage (written or verified by this process)
        self._present: dict[str, str] = {}

    async def is_present(self, artifact: Mapping[str, Any]) -> bool:
        """Is the published artifact in storage? Checked once per process, then remembered."""
        key, digest = artifact.get("path"), artifact.get("digest")
        if not key or not digest:
            return False
        if self._present.get(key) == digest:
            return True
        info = await self._storage.stat(key)
        if info is None or info.size != artifact.get("size", info.size):
            log.info("published artifact missing from storage; rebuilding", path=key)
            return False
        self._present[key] = digest
        return True

    async def publish(
        self,
        *,
        namespace: str,
        name: str,
        produced: Produced,
        published: Mapping[str, Any] | None,
        present: bool,
    ) -> JSON:
        """The `status.artifact` for `produced`: stored (and older ones collected) unless the
        same bytes are published and `present` (in storage) already."""
        packaged = produced.artifact
        if published and published.get("digest") == packaged.digest and present:
            return dict(published) | {"metadata": produced.artifact_metadata()}
        key = artifact_key(namespace, name, packaged.hex)
        await self._storage.put(key, packaged.file)
        self._present[key] = packaged.digest
        removed = await collect_garbage(
            self._storage,
            namespace=namespace,
            name=name,
            current_key=key,
            keep_records=self._retention.records,
            ttl=self._retention.ttl,
        )
        for old in removed:
            self._present.pop(old, None)
        return {
            "path": key,
            "url": artifact_url(self._retention.advertised_address, key),
            "revision": revision(packaged.hex),
            "digest": packaged.digest,
            "size": packaged.size,
            "lastUpdateTime": cond.now_rfc3339(),
            "metadata": produced.artifact_metadata(),
        }

    async def delete(self, *, namespace: str, name: str) -> None:
        """Every artifact of a deleted source."""
        await delete_source(self._storage, namespace=namespace, name=name)
        prefix = source_prefix(namespace, name)
        for key in [k for k in self._present if k.startswith(prefix)]:
            del self._present[key]
