"""The key the whole runtime passes around: `ObjectKey(namespace, name)`.

kr8s objects are unhashable (`__eq__` without `__hash__`), and a key must
outlive any one version of an object, so the queue, the cache and the
reconciler agree on a small immutable tuple. `str(key)` is `namespace/name`,
the form used in logs and by `kubectl`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class ObjectKey(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    """The key of a raw Kubernetes object dict."""
    meta = obj["metadata"]
    return ObjectKey(meta.get("namespace") or "", meta["name"])
