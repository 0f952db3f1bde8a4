"""JSON merge patches (RFC 7386) computed from what is there and what we want.

A status write sends only what changed, and a key that we no longer want is
sent as `null`, the only way a merge patch removes a key: without it a stale
`etag` would stay in `status.artifact.metadata` forever and every comparison
with the wanted status would fail. An empty diff means "nothing to write".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (keys of `old` missing in `new` → None)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_diff(before, value)
            if nested:
                patch[key] = nested
        elif before != value or key not in old:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`patch` applied to `old` as the API server applies a merge patch."""
    result = dict(old)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = apply(result[key], value)
        else:
            result[key] = value
    return result
