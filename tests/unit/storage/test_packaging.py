"""Packaging: reproducible archives that a Flux consumer accepts, built in a streaming pass."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import threading
from typing import IO

import pytest

from storage.packaging import (
    CHUNK_SIZE,
    DEFAULT_CODEC,
    ISAL_CODEC,
    ZLIB_CODEC,
    package,
    package_async,
)
from tests.unit.storage.flux_consumer import untar, verify_digest

REPO = pathlib.Path(__file__).resolve().parents[3]

_PACKAGE_IN_SUBPROCESS = """
import sys
from storage.packaging import package
with open(sys.argv[1], "rb") as data:
    artifact = package(data, sys.argv[2])
with open(sys.argv[3], "wb") as out:
    out.write(artifact.file.read())
print(artifact.digest)
"""


def _json_body(records: int) -> bytes:
    return json.dumps(
        [{"id": i, "name": f"flag-{i}", "on": i % 3 == 0} for i in range(records)]
    ).encode()


def test_two_processes_produce_byte_identical_archives(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "body.json"
    source.write_bytes(_json_body(50_000))
    outputs = []
    for run, seed in enumerate(("1", "2")):
        out = tmp_path / f"out{run}.tar.gz"
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _PACKAGE_IN_SUBPROCESS,
                str(source),
                "deep/dir/data.json",
                str(out),
            ],
            cwd=REPO,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin", "TZ": f"UTC+{seed}"},
            capture_output=True,
            check=True,
            text=True,
            timeout=60,
        )
        outputs.append((done.stdout.strip(), out.read_bytes()))
    (digest_a, bytes_a), (digest_b, bytes_b) = outputs
    assert bytes_a == bytes_b
    assert digest_a == digest_b == "sha256:" + hashlib.sha256(bytes_a).hexdigest()
    # and the parent process, at another time, agrees too
    with package(io.BytesIO(source.read_bytes()), "deep/dir/data.json") as here:
        assert here.digest == digest_a


def test_flux_consumer_accepts_archive_and_digest(tmp_path: pathlib.Path) -> None:
    body = _json_body(1000)
    with package(io.BytesIO(body), "config/prod/data.json") as artifact:
        served = artifact.file.read()
    assert len(served) == artifact.size
    verify_digest(artifact.digest, served)
    assert artifact.digest == f"sha256:{artifact.hex}"
    assert untar(served, tmp_path) == ["config/", "config/prod/", "config/prod/data.json"]
    assert (tmp_path / "config/prod/data.json").read_bytes() == body


def test_entries_are_normalised() -> None:
    with (
        package(io.BytesIO(b"x" * 1234), "a/b/c.txt") as artifact,
        tarfile.open(fileobj=artifact.file, mode="r:gz") as archive,
    ):
        members = archive.getmembers()
    assert [(m.name, m.type, m.mode) for m in members] == [
        ("a", tarfile.DIRTYPE, 0o755),
        ("a/b", tarfile.DIRTYPE, 0o755),
        ("a/b/c.txt", tarfile.REGTYPE, 0o644),
    ]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


@pytest.mark.parametrize("codec", [ZLIB_CODEC, ISAL_CODEC], ids=["zlib", "isal"])
def test_gzip_header_has_no_time_and_no_name(codec: object) -> None:
    assert codec is not None
    with package(io.BytesIO(b"data"), "data", codec=codec) as artifact:  # type: ignore[arg-type]
        head = artifact.file.read(10)
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0, "no FNAME/FEXTRA/FCOMMENT flags"
    assert head[4:8] == b"\x00\x00\x00\x00", "gzip mtime is 0"


def test_isal_is_the_default_codec() -> None:
    assert DEFAULT_CODEC is ISAL_CODEC


def test_zlib_fallback_is_also_reproducible_and_valid(tmp_path: pathlib.Path) -> None:
    body = _json_body(500)
    with (
        package(io.BytesIO(body), "d.json", codec=ZLIB_CODEC) as first,
        package(io.BytesIO(body), "d.json", codec=ZLIB_CODEC) as second,
    ):
        data = first.file.read()
        assert data == second.file.read()
    verify_digest(first.digest, data)
    untar(data, tmp_path)
    assert (tmp_path / "d.json").read_bytes() == body


def test_long_and_unicode_names_use_pax_records(tmp_path: pathlib.Path) -> None:
    path = "/".join(["segment-" + "x" * 40] * 4) + "/données.json"
    with package(io.BytesIO(b"{}"), path) as artifact:
        raw = artifact.file.read()
    names = untar(raw, tmp_path)
    assert names[-1] == path
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        assert archive.getmembers()[-1].name == path
    assert b"././@LongLink" not in gzip.decompress(raw)


def test_empty_body_is_packaged(tmp_path: pathlib.Path) -> None:
    with package(io.BytesIO(b""), "empty.json") as artifact:
        untar(artifact.file.read(), tmp_path)
    assert (tmp_path / "empty.json").read_bytes() == b""


def test_packages_from_the_current_position() -> None:
    data = io.BytesIO(b"HEADERpayload")
    data.seek(6)
    with package(io.BytesIO(b"payload"), "p") as whole, package(data, "p") as tail:
        assert tail.digest == whole.digest


class _Recording(io.RawIOBase):
    """A non-seekable stream that records how much was asked per read and from which thread."""

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)
        self.reads: list[int] = []
        self.threads: set[int] = set()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        self.threads.add(threading.get_ident())
        return self._body.read(size)


def test_non_seekable_input_is_read_in_bounded_chunks(tmp_path: pathlib.Path) -> None:
    body = _json_body(200_000)
    stream = _Recording(body)
    with (
        package(stream, "data.json", spool_dir=str(tmp_path)) as streamed,  # type: ignore[arg-type]
        package(io.BytesIO(body), "data.json") as seekable,
    ):
        assert all(0 < size <= CHUNK_SIZE for size in stream.reads)
        assert streamed.digest == seekable.digest
        assert list(tmp_path.iterdir()) == [], "spool files are anonymous"


async def test_package_async_runs_off_the_event_loop_thread() -> None:
    stream = _Recording(b"x" * (3 * CHUNK_SIZE))
    artifact = await package_async(stream, "data")  # type: ignore[arg-type]
    assert threading.get_ident() not in stream.threads
    with artifact:
        assert artifact.size == len(artifact.file.read())
    assert artifact.file.closed


class _Exploding(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= CHUNK_SIZE:
            raise OSError("disk went away")
        return super().read(size)


def test_failure_mid_read_leaves_no_temp_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OSError, match="disk went away"):
        package(_Exploding(b"y" * (3 * CHUNK_SIZE)), "data", spool_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "a/../b",
        "..",
        "../x",
        "a\\b",
        "a//b",
        "./a",
        "a/./b",
        "dir/",
        "a\x00b",
        "x../y",
    ],
)
def test_destination_path_is_validated(path: str) -> None:
    data: IO[bytes] = io.BytesIO(b"x")
    with pytest.raises(ValueError, match="destinationPath"):
        package(data, path)
