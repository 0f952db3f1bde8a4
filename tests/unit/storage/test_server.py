"""The artifact server over a real loopback socket: exact keys only, streamed, no traversal."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pathlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from storage.filesystem import FilesystemBackend
from storage.naming import artifact_key
from storage.packaging import package
from storage.server import ArtifactServer
from tests.unit.storage.flux_consumer import untar, verify_digest

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"


@pytest_asyncio.fixture
async def root(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


@pytest_asyncio.fixture
async def backend(root: pathlib.Path) -> FilesystemBackend:
    return FilesystemBackend(root)


@pytest_asyncio.fixture
async def server(backend: FilesystemBackend) -> AsyncIterator[ArtifactServer]:
    async with ArtifactServer(backend, host="127.0.0.1", port=0, serving=True) as running:
        yield running


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def _raw(server: ArtifactServer, request_line: str) -> tuple[int, bytes]:
    """Send exactly `request_line` (no client-side normalisation) and return (status, response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(response.split(b" ", 2)[1]), response


async def test_get_serves_an_artifact_flux_accepts(
    server: ArtifactServer,
    backend: FilesystemBackend,
    client: aiohttp.ClientSession,
    tmp_path: pathlib.Path,
) -> None:
    with package(io.BytesIO(b'{"flags": []}'), "data.json") as artifact:
        key = artifact_key("ns", "src", artifact.hex)
        await backend.put(key, artifact.file)
    async with client.get(f"{server.url}/{key}") as resp:
        body = await resp.read()
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(artifact.size)
        assert resp.headers["ETag"] == f'"{artifact.digest}"'
        assert resp.headers["Content-Type"] == "application/gzip"
    verify_digest(artifact.digest, body)
    untar(body, tmp_path / "out")
    assert (tmp_path / "out/data.json").read_bytes() == b'{"flags": []}'


async def test_head_has_headers_and_no_body(
    server: ArtifactServer, backend: FilesystemBackend, client: aiohttp.ClientSession
) -> None:
    key = artifact_key("ns", "src", "c" * 64)
    await backend.put(key, io.BytesIO(b"12345"))
    status, raw = await _raw(server, f"HEAD /{key} HTTP/1.1")
    assert status == 200
    assert raw.endswith(b"\r\n\r\n"), "no body after the headers"
    async with client.head(f"{server.url}/{key}") as resp:
        assert resp.headers["Content-Length"] == "5"
        assert resp.headers["ETag"] == f'"sha256:{"c" * 64}"'


async def test_large_artifact_is_streamed_whole(
    server: ArtifactServer, backend: FilesystemBackend, client: aiohttp.ClientSession
) -> None:
    body = os.urandom(24 * 1024 * 1024 + 3)
    key = artifact_key("ns", "big", hashlib.sha256(body).hexdigest())
    await backend.put(key, io.BytesIO(body))
    digest = hashlib.sha256()
    received = 0
    async with client.get(f"{server.url}/{key}") as resp:
        assert resp.headers["Content-Length"] == str(len(body))
        async for chunk in resp.content.iter_chunked(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
    assert received == len(body)
    assert f"sha256:{digest.hexdigest()}" == resp.headers["ETag"].strip('"')


async def test_non_artifact_keys_get_no_etag(
    server: ArtifactServer, backend: FilesystemBackend, client: aiohttp.ClientSession
) -> None:
    await backend.put("other/file.bin", io.BytesIO(b"x"))
    async with client.get(f"{server.url}/other/file.bin") as resp:
        assert resp.status == 200
        assert "ETag" not in resp.headers
        assert resp.headers["Content-Type"] == "application/octet-stream"


async def test_unknown_paths_and_directories_are_404(
    server: ArtifactServer, backend: FilesystemBackend, client: aiohttp.ClientSession
) -> None:
    key = artifact_key("ns", "src", "d" * 64)
    await backend.put(key, io.BytesIO(b"x"))
    for path in ["/nope", "/externalsource", "/externalsource/ns/src", "/externalsource/ns/src/"]:
        async with client.get(f"{server.url}{path}") as resp:
            assert resp.status == 404, path
            assert b"tar.gz" not in await resp.read(), "no listing"


@pytest.mark.parametrize(
    "target",
    [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/.%2e/secret",
        "/externalsource/../../secret",
        "/externalsource/%2e%2e/%2e%2e/secret",
        "/externalsource%2F..%2F..%2Fsecret",
        "/%2F..%2Fsecret",
        "/..%2fsecret",
        "//secret",
        "//..//secret",
        "/externalsource//ns",
        "/..\\secret",
        "/%5c..%5csecret",
        "/secret%00",
        "/%00",
        "http://127.0.0.1/../secret",
        "/./secret",
        "/..",
        "/%2e%2e",
    ],
)
async def test_path_traversal_is_impossible(server: ArtifactServer, target: str) -> None:
    status, raw = await _raw(server, f"GET {target} HTTP/1.1")
    assert status == 404
    assert SECRET not in raw


async def test_raw_nul_byte_in_target_is_rejected(server: ArtifactServer) -> None:
    status, raw = await _raw(server, "GET /..\x00/secret HTTP/1.1")
    assert status in (400, 404)  # the HTTP parser may refuse it before we see it
    assert SECRET not in raw


async def test_absolute_path_of_a_real_file_is_not_served(
    server: ArtifactServer, root: pathlib.Path
) -> None:
    status, raw = await _raw(server, f"GET {root.parent / 'secret'} HTTP/1.1")
    assert status == 404
    assert SECRET not in raw


async def test_percent_encoded_valid_key_is_not_decoded(
    server: ArtifactServer, backend: FilesystemBackend
) -> None:
    await backend.put("a/b", io.BytesIO(b"x"))
    assert (await _raw(server, "GET /a/b HTTP/1.1"))[0] == 200
    assert (await _raw(server, "GET /a%2Fb HTTP/1.1"))[0] == 404
    assert (await _raw(server, "GET /%61/b HTTP/1.1"))[0] == 404


async def test_other_methods_are_refused(
    server: ArtifactServer, backend: FilesystemBackend
) -> None:
    await backend.put("a/b", io.BytesIO(b"x"))
    for method in ("POST", "PUT", "DELETE"):
        status, raw = await _raw(server, f"{method} /a/b HTTP/1.1")
        assert status == 405
        assert b"Allow: GET, HEAD" in raw
    assert (await backend.stat("a/b")) is not None


async def test_readiness_follows_set_serving(
    backend: FilesystemBackend, client: aiohttp.ClientSession
) -> None:
    await backend.put("a/b", io.BytesIO(b"x"))
    async with ArtifactServer(backend, host="127.0.0.1", port=0) as server:
        assert not server.serving
        for path in ("/", "/a/b"):
            async with client.get(f"{server.url}{path}") as resp:
                assert resp.status == 503, path
        server.set_serving(True)
        async with client.get(f"{server.url}/") as resp:
            assert (resp.status, await resp.text()) == (200, "ok\n")
        async with client.get(f"{server.url}/a/b") as resp:
            assert (resp.status, await resp.read()) == (200, b"x")
        server.set_serving(False)
        async with client.get(f"{server.url}/a/b") as resp:
            assert resp.status == 503


async def test_stop_releases_the_port(backend: FilesystemBackend) -> None:
    server = ArtifactServer(backend, host="127.0.0.1", port=0, serving=True)
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /a/b.tar.gz HTTP/1.1\r\nHost: x\r\n", b"GET /a/b.tar.gz HTT"],
    ids=["idle", "half-sent-headers", "half-sent-request-line"],
)
async def test_idle_and_half_sent_connections_are_closed(
    backend: FilesystemBackend, sent: bytes
) -> None:
    """A client that never completes a request loses its socket instead of holding it forever."""
    async with ArtifactServer(
        backend, host="127.0.0.1", port=0, serving=True, idle_timeout=0.5
    ) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(sent)
            await writer.drain()
            # the bound is generous; without the idle timeout aiohttp waits an hour
            received = await asyncio.wait_for(reader.read(), timeout=20)
        finally:
            writer.close()
            await writer.wait_closed()
    assert b"200" not in received  # closed without serving anything


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_symlink_out_of_the_root_is_404_not_500(
    root: pathlib.Path, server: ArtifactServer, method: str
) -> None:
    """A symlink planted in the storage root that points outside it serves nothing."""
    (root / "escape").symlink_to(root.parent)
    (root / "file.tar.gz").symlink_to(root.parent / "secret")
    for target in ("/escape/secret", "/file.tar.gz"):
        status, raw = await _raw(server, f"{method} {target} HTTP/1.1")
        assert status == 404, raw
        assert SECRET not in raw
