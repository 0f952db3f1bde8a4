"""Retention: keep the current artifact plus the newest within the TTL; delete a whole source."""

from __future__ import annotations

import datetime
import io
import os
import pathlib

from storage.filesystem import FilesystemBackend
from storage.memory import MemoryBackend
from storage.naming import artifact_key
from storage.retention import collect_garbage, delete_source

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _key(digit: str, name: str = "src") -> str:
    return artifact_key("ns", name, digit * 64)


async def _store_aged(backend: FilesystemBackend, ages: dict[str, float]) -> None:
    """Store one artifact per key with a modification time `age` seconds before NOW."""
    for key, age in ages.items():
        await backend.put(key, io.BytesIO(key.encode()))
        stamp = (NOW - datetime.timedelta(seconds=age)).timestamp()
        os.utime(backend.root / key, (stamp, stamp))


async def _keys(backend: FilesystemBackend | MemoryBackend, name: str = "src") -> set[str]:
    return {o.key for o in await backend.list(f"externalsource/ns/{name}/")}


async def test_keeps_records_newest_including_current(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await _store_aged(backend, {_key("a"): 0, _key("b"): 10, _key("c"): 20, _key("d"): 30})
    deleted = await collect_garbage(
        backend, namespace="ns", name="src", current_key=_key("a"), keep_records=2, ttl=60, now=NOW
    )
    assert sorted(deleted) == [_key("c"), _key("d")]
    assert await _keys(backend) == {_key("a"), _key("b")}


async def test_ttl_expires_previous_artifacts(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await _store_aged(backend, {_key("a"): 0, _key("b"): 61, _key("c"): 30})
    deleted = await collect_garbage(
        backend, namespace="ns", name="src", current_key=_key("a"), keep_records=5, ttl=60, now=NOW
    )
    assert deleted == [_key("b")]
    assert await _keys(backend) == {_key("a"), _key("c")}


async def test_current_is_never_deleted_even_when_old_or_outranked(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    # the current artifact is the oldest and past the TTL (e.g. content reverted, clock skew)
    await _store_aged(backend, {_key("a"): 500, _key("b"): 5, _key("c"): 1})
    deleted = await collect_garbage(
        backend, namespace="ns", name="src", current_key=_key("a"), keep_records=1, ttl=60, now=NOW
    )
    assert sorted(deleted) == [_key("b"), _key("c")]
    assert await _keys(backend) == {_key("a")}


async def test_only_the_current_remains_after_the_ttl() -> None:
    backend = MemoryBackend()
    for digit in "abc":
        await backend.put(_key(digit), io.BytesIO(digit.encode()))
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
    await collect_garbage(
        backend,
        namespace="ns",
        name="src",
        current_key=_key("c"),
        keep_records=2,
        ttl=60,
        now=later,
    )
    assert await _keys(backend) == {_key("c")}


async def test_other_sources_are_untouched(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await _store_aged(
        backend,
        {_key("a"): 0, _key("b"): 600, _key("c", "src-2"): 600, _key("d", "sr"): 600},
    )
    deleted = await collect_garbage(
        backend, namespace="ns", name="src", current_key=_key("a"), keep_records=2, ttl=60, now=NOW
    )
    assert deleted == [_key("b")]
    assert await _keys(backend, "src-2") == {_key("c", "src-2")}
    assert await _keys(backend, "sr") == {_key("d", "sr")}


async def test_delete_source_removes_all_of_one_source(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await _store_aged(backend, {_key("a"): 0, _key("b"): 1, _key("c", "keep"): 0})
    removed = await delete_source(backend, namespace="ns", name="src")
    assert sorted(removed) == [_key("a"), _key("b")]
    assert await _keys(backend) == set()
    assert await _keys(backend, "keep") == {_key("c", "keep")}
    assert not (tmp_path / "externalsource/ns/src").exists()
