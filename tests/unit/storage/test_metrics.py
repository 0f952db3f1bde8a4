"""Storage metrics are recorded for every backend built by the factory."""

from __future__ import annotations

import io
import pathlib

import pytest
from prometheus_client import REGISTRY

from storage.factory import create_backend
from storage.settings import StorageSettings


def _count(backend: str, operation: str, outcome: str) -> float:
    labels = {"backend": backend, "operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("externalsource_storage_operations_total", labels) or 0.0


def _observations(backend: str, operation: str) -> float:
    labels = {"backend": backend, "operation": operation}
    return (
        REGISTRY.get_sample_value("externalsource_storage_operation_duration_seconds_count", labels)
        or 0.0
    )


@pytest.mark.parametrize("kind", ["memory", "filesystem"])
async def test_operations_are_counted_and_timed(kind: str, tmp_path: pathlib.Path) -> None:
    backend = create_backend(StorageSettings(storage_backend=kind, storage_path=str(tmp_path)))
    before = {
        (op, outcome): _count(kind, op, outcome)
        for op in ("put", "open", "stat", "list", "delete")
        for outcome in ("success", "not_found", "aborted", "error")
    }
    timed_before = _observations(kind, "put")

    await backend.put("a/b", io.BytesIO(b"x" * (3 * 1024 * 1024)))
    assert b"".join([c async for c in backend.open("a/b")]) == b"x" * (3 * 1024 * 1024)
    with pytest.raises(KeyError):
        [c async for c in backend.open("a/missing")]
    stream = backend.open("a/b")
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert await backend.stat("a/missing") is None
    await backend.list("a/")
    await backend.delete("a/b")
    with pytest.raises(ValueError):
        await backend.put("../x", io.BytesIO(b""))

    def delta(op: str, outcome: str) -> float:
        return _count(kind, op, outcome) - before[(op, outcome)]

    assert delta("put", "success") == 1
    assert delta("put", "error") == 1
    assert delta("open", "success") == 1
    assert delta("open", "not_found") == 1
    assert delta("open", "aborted") == 1
    assert delta("stat", "success") == 1
    assert delta("list", "success") == 1
    assert delta("delete", "success") == 1
    assert _observations(kind, "put") - timed_before == 2
