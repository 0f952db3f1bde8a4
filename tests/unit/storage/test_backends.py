"""Memory and filesystem backends: the StorageBackend contract, atomic writes, confinement."""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import structlog.testing

from storage.backend import StorageBackend, StorageError
from storage.filesystem import FilesystemBackend
from storage.memory import MemoryBackend

KEY = "externalsource/ns/src/" + "a" * 64 + ".tar.gz"


@pytest_asyncio.fixture(params=["memory", "filesystem"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[StorageBackend]:
    created: StorageBackend = (
        MemoryBackend() if request.param == "memory" else FilesystemBackend(tmp_path)
    )
    yield created
    await created.aclose()


async def _read(backend: StorageBackend, key: str) -> bytes:
    return b"".join([chunk async for chunk in backend.open(key)])


async def test_round_trip(backend: StorageBackend) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    assert await backend.put(KEY, io.BytesIO(body)) == len(body)
    assert await _read(backend, KEY) == body
    info = await backend.stat(KEY)
    assert info is not None
    assert (info.key, info.size) == (KEY, len(body))
    assert info.modified.tzinfo is not None


async def test_put_stores_the_rest_of_the_source(backend: StorageBackend) -> None:
    source = io.BytesIO(b"skipped|kept")
    source.seek(8)
    assert await backend.put(KEY, source) == 4
    assert await _read(backend, KEY) == b"kept"


async def test_overwrite_replaces_content(backend: StorageBackend) -> None:
    await backend.put(KEY, io.BytesIO(b"old"))
    await backend.put(KEY, io.BytesIO(b"new!"))
    assert await _read(backend, KEY) == b"new!"


async def test_absent_keys(backend: StorageBackend) -> None:
    assert await backend.stat(KEY) is None
    with pytest.raises(KeyError):
        await _read(backend, KEY)
    await backend.delete(KEY)  # not an error


async def test_list_by_prefix_and_delete(backend: StorageBackend) -> None:
    keys = [
        "externalsource/ns/a/1.tar.gz",
        "externalsource/ns/a/2.tar.gz",
        "externalsource/ns/ab/3.tar.gz",
        "externalsource/other/a/4.tar.gz",
    ]
    for key in keys:
        await backend.put(key, io.BytesIO(key.encode()))
    listed = await backend.list("externalsource/ns/a/")
    assert sorted(o.key for o in listed) == keys[:2]
    assert sorted(o.key for o in await backend.list("externalsource/ns/a")) == keys[:3]
    assert sorted(o.key for o in await backend.list("")) == sorted(keys)
    await backend.delete(keys[0])
    assert [o.key for o in await backend.list("externalsource/ns/a/")] == [keys[1]]


class _FailsMidway(io.RawIOBase):
    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= 2 * 1024 * 1024:
            raise OSError("source vanished")
        self.sent += 1024 * 1024
        return b"z" * (1024 * 1024)


async def test_failed_put_leaves_nothing_visible(backend: StorageBackend) -> None:
    await backend.put(KEY, io.BytesIO(b"previous good artifact"))
    with pytest.raises(StorageError, match="source vanished"):
        await backend.put(KEY, _FailsMidway())  # type: ignore[arg-type]
    assert await _read(backend, KEY) == b"previous good artifact"
    other = KEY.replace("a" * 64, "b" * 64)
    with pytest.raises(StorageError, match="source vanished"):
        await backend.put(other, _FailsMidway())  # type: ignore[arg-type]
    assert await backend.stat(other) is None
    assert [o.key for o in await backend.list("externalsource/")] == [KEY]


async def test_filesystem_failed_put_leaves_no_temp_file(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    with pytest.raises(StorageError, match="source vanished"):
        await backend.put(KEY, _FailsMidway())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


async def test_filesystem_writes_files_under_root_and_prunes_dirs(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await backend.put(KEY, io.BytesIO(b"on disk"))
    path = tmp_path / KEY
    assert path.read_bytes() == b"on disk"
    assert path.stat().st_mode & 0o777 == 0o644
    await backend.delete(KEY)
    assert list(tmp_path.iterdir()) == []


async def test_filesystem_ignores_foreign_temp_files(tmp_path: pathlib.Path) -> None:
    backend = FilesystemBackend(tmp_path)
    await backend.put(KEY, io.BytesIO(b"x"))
    (tmp_path / "externalsource/ns/src/.tmp-crashed").write_bytes(b"half")
    assert [o.key for o in await backend.list("")] == [KEY]


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a\\b", "a//b", "", "a/./b", "a\x00b", "a/"],
)
async def test_invalid_keys_are_refused(backend: StorageBackend, key: str) -> None:
    with pytest.raises(ValueError):
        await backend.put(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        await backend.stat(key)


async def test_filesystem_refuses_symlinks_out_of_root(tmp_path: pathlib.Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    (root / "link").symlink_to(outside)
    backend = FilesystemBackend(root)
    with pytest.raises(KeyError):  # for a reader, the escaping key does not exist
        await _read(backend, "link/secret")
    assert await backend.stat("link/secret") is None
    with pytest.raises(ValueError, match="outside the storage root"):
        await backend.put("link/new", io.BytesIO(b"x"))
    assert not (outside / "new").exists()


async def test_filesystem_survives_a_new_instance(tmp_path: pathlib.Path) -> None:
    await FilesystemBackend(tmp_path).put(KEY, io.BytesIO(b"persisted"))
    reopened = FilesystemBackend(tmp_path)
    assert reopened.persistent
    assert await _read(reopened, KEY) == b"persisted"


def test_memory_backend_warns_that_it_is_not_persistent() -> None:
    with structlog.testing.capture_logs() as logs:
        backend = MemoryBackend()
    assert not backend.persistent
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "NOT persistent" in warnings[0]["event"]
    assert "restart" in warnings[0]["event"]
