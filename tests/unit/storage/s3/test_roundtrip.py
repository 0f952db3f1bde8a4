"""Round trips against a real S3-compatible server: what the controller and artifact server see."""

from __future__ import annotations

import io
import pathlib

import pytest

from tests.fixtures.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, MotoServer
from tests.unit.storage.s3.conftest import MakeBackend, read_all, write_credentials

KEY = "externalsource/default/flags/" + "a" * 64 + ".tar.gz"


async def test_put_open_stat_delete(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket)
    body = b"artifact bytes " * 1000

    assert await backend.put(KEY, io.BytesIO(body)) == len(body)

    assert await read_all(backend, KEY) == body
    info = await backend.stat(KEY)
    assert info is not None
    assert (info.key, info.size) == (KEY, len(body))
    assert info.modified.tzinfo is not None
    await backend.delete(KEY)
    assert await backend.stat(KEY) is None


async def test_absent_objects(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket)

    assert await backend.stat(KEY) is None
    with pytest.raises(KeyError):
        await read_all(backend, KEY)
    await backend.delete(KEY)  # deleting an absent key is not an error
    assert await backend.list("externalsource/") == []


async def test_put_writes_the_rest_of_the_source(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket)
    source = io.BytesIO(b"headerPAYLOAD")
    source.seek(6)

    assert await backend.put(KEY, source) == 7
    assert await read_all(backend, KEY) == b"PAYLOAD"


async def test_empty_artifact(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket)

    assert await backend.put(KEY, io.BytesIO(b"")) == 0
    assert await read_all(backend, KEY) == b""
    info = await backend.stat(KEY)
    assert info is not None
    assert info.size == 0


async def test_prefix_is_applied_and_hidden(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_prefix="/flux/artifacts/")
    await backend.put(KEY, io.BytesIO(b"x"))
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="elsewhere/" + KEY, Body=b"y")

    raw = moto_server.client("s3").list_objects_v2(Bucket=s3_bucket)
    assert sorted(item["Key"] for item in raw["Contents"]) == [
        "elsewhere/" + KEY,
        "flux/artifacts/" + KEY,
    ]
    assert [info.key for info in await backend.list("externalsource/")] == [KEY]
    assert (await backend.stat(KEY)) is not None
    await backend.delete(KEY)
    assert "flux/artifacts/" + KEY not in [
        item["Key"]
        for item in moto_server.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    ]


async def test_list_pages_through_every_object_under_the_prefix(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_prefix="p", list_page_size=4)
    keys = [f"externalsource/ns/a/{i:064x}.tar.gz" for i in range(11)]
    for key in keys:
        await backend.put(key, io.BytesIO(key.encode()))
    await backend.put("externalsource/ns/ab/" + "f" * 64 + ".tar.gz", io.BytesIO(b"other source"))

    listed = await backend.list("externalsource/ns/a/")

    assert [info.key for info in listed] == keys
    assert all(info.size == len(info.key) for info in listed)


async def test_keys_that_could_escape_are_refused(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_prefix="tenant-a")

    with pytest.raises(Exception, match="invalid storage key") as caught:
        await backend.put("../tenant-b/x", io.BytesIO(b"x"))
    assert caught.value.transient is False  # type: ignore[attr-defined]


async def test_credentials_from_a_mounted_secret(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend, tmp_path: pathlib.Path
) -> None:
    directory = write_credentials(tmp_path / "secret", FAKE_ACCESS_KEY, FAKE_SECRET_KEY)
    backend = make_backend(moto_server, s3_bucket, s3_credentials_dir=directory)

    await backend.put(KEY, io.BytesIO(b"via secret"))
    assert await read_all(backend, KEY) == b"via secret"


async def test_virtual_hosted_addressing_reaches_an_ip_endpoint(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_path_style=False)

    await backend.put(KEY, io.BytesIO(b"auto style"))
    assert await read_all(backend, KEY) == b"auto style"
