"""Deterministic packaging: one data file → ``.tar.gz`` + sha256 in a single streaming pass.

Flux consumers compare the digest of the bytes they download with
``status.artifact.digest`` and only react when the revision (derived from that
digest) changes, so the archive must be a pure function of (data, path):

- tar: PAX format (POSIX.1-2001; names longer than 100 bytes or non-ASCII get a
  PAX ``path`` record, never GNU ``././@LongLink``), entries sorted (the parent
  directories of the data file, then the file), uid/gid 0, empty user/group
  names, mtime 0, mode 0o755 for directories and 0o644 for the file;
- gzip: header mtime 0, no file name (FLG=0), produced by a streaming
  ``compressobj`` so the output depends only on the input and the codec.

Headers come from `tarfile.TarInfo.tobuf`; the body, block padding and the
end-of-archive records are written here so the data flows in fixed-size chunks
through tar → gzip → (sha256, spool file) without ever being held whole in
memory. The codec is isal (``isal_zlib``, several times faster than zlib at a
similar ratio) and falls back to the stdlib zlib when isal is missing; the two
produce different bytes, so a process keeps to one codec (the digest is stable
across processes and runs of the same installation).

`package` is synchronous and CPU-bound; `package_async` runs it in a worker
thread so the event loop keeps serving other reconciles.
"""

from __future__ import annotations

import functools
import hashlib
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import IO, Protocol

import anyio.to_thread
import attrs

_ISAL_ZLIB: ModuleType | None
try:
    from isal import isal_zlib as _isal_zlib

    _ISAL_ZLIB = _isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    _ISAL_ZLIB = None

CHUNK_SIZE = 1024 * 1024
#: bodies up to this size are packaged on the event loop and kept in memory
SMALL_BODY = 64 * 1024
FILE_MODE = 0o644
DIR_MODE = 0o755
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_GZIP_WBITS = 16 + 15  # gzip container, 32 KiB window


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self, mode: int = ..., /) -> bytes: ...


@attrs.frozen
class GzipCodec:
    """A gzip implementation and level; part of what makes the output reproducible."""

    name: str
    level: int
    module: ModuleType = attrs.field(repr=False)

    def compressor(self) -> _Compressor:
        obj: _Compressor = self.module.compressobj(self.level, self.module.DEFLATED, _GZIP_WBITS)
        return obj


ZLIB_CODEC = GzipCodec(name="zlib", level=1, module=zlib)
ISAL_CODEC: GzipCodec | None = (
    GzipCodec(name="isal", level=2, module=_ISAL_ZLIB) if _ISAL_ZLIB is not None else None
)
DEFAULT_CODEC: GzipCodec = ISAL_CODEC or ZLIB_CODEC


@attrs.define
class PackagedArtifact:
    """A packaged artifact spooled to an anonymous temp file positioned at 0.

    The caller owns `file` and closes it (`close()` or ``with``), which removes it.
    """

    file: IO[bytes]
    hex: str
    size: int

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the ``.tar.gz`` bytes exactly as stored and served."""
        return f"sha256:{self.hex}"

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> PackagedArtifact:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def archive_entries(destination_path: str) -> list[str]:
    """The entry names of the archive, in order: parent directories (with ``/``), then the file.

    Raises ValueError for a path a Flux consumer would refuse to extract (absolute,
    ``..``, backslash, empty segments) or that could not be a file name.
    """
    if not destination_path or destination_path.startswith("/") or destination_path.endswith("/"):
        raise ValueError(
            f"destinationPath {destination_path!r} must be a relative file path"
            " (no leading or trailing '/')"
        )
    if "\\" in destination_path or "\x00" in destination_path:
        raise ValueError(f"destinationPath {destination_path!r} must not contain '\\' or NUL")
    segments = destination_path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError(
            f"destinationPath {destination_path!r} must not contain empty, '.' or '..' segments"
        )
    entries = ["/".join(segments[:i]) + "/" for i in range(1, len(segments))]
    entries.append(destination_path)
    if any("../" in entry for entry in entries):  # Flux rejects the substring, e.g. "a../b"
        raise ValueError(f"destinationPath {destination_path!r} must not contain '../'")
    return entries


def _header(name: str, *, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    if name.endswith("/"):
        info.type, info.mode, info.size = tarfile.DIRTYPE, DIR_MODE, 0
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, FILE_MODE, size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


class _Sink:
    """tar bytes in → gzip → sha256 + spool file; counts the compressed size."""

    def __init__(self, out: IO[bytes], codec: GzipCodec) -> None:
        self._out = out
        self._compressor = codec.compressor()
        self._sha = hashlib.sha256()
        self.tar_size = 0
        self.size = 0

    def _emit(self, compressed: bytes) -> None:
        if compressed:
            self._sha.update(compressed)
            self._out.write(compressed)
            self.size += len(compressed)

    def write(self, data: bytes) -> None:
        self.tar_size += len(data)
        self._emit(self._compressor.compress(data))

    def finish(self) -> str:
        self._emit(self._compressor.flush())
        self._out.flush()
        return self._sha.hexdigest()


def _remaining_size(data: IO[bytes]) -> int | None:
    """Bytes from the current position to the end, or None for a non-seekable stream."""
    try:
        if not data.seekable():
            return None
        start = data.tell()
        end = data.seek(0, 2)
        data.seek(start)
    except (OSError, ValueError):
        return None
    return end - start


def _spool(data: IO[bytes], spool_dir: str | None) -> IO[bytes]:
    spooled = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - returned to the caller
    try:
        while chunk := data.read(CHUNK_SIZE):
            spooled.write(chunk)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return spooled


def _write_archive(sink: _Sink, *, data: IO[bytes], entries: list[str], size: int) -> None:
    for entry in entries[:-1]:
        sink.write(_header(entry, size=0))
    sink.write(_header(entries[-1], size=size))
    copied = 0
    while chunk := data.read(CHUNK_SIZE):
        copied += len(chunk)
        if copied > size:
            break
        sink.write(chunk)
    if copied != size:
        raise ValueError(f"data changed while packaging: expected {size} bytes, read {copied}")
    if size % _BLOCK:
        sink.write(bytes(_BLOCK - size % _BLOCK))
    sink.write(bytes(2 * _BLOCK))  # end-of-archive marker
    if sink.tar_size % _RECORD:  # pad to a full record like tar(1) and tarfile do
        sink.write(bytes(_RECORD - sink.tar_size % _RECORD))


def package(
    data: IO[bytes],
    destination_path: str,
    *,
    spool_dir: str | None = None,
    codec: GzipCodec = DEFAULT_CODEC,
) -> PackagedArtifact:
    """Package the rest of `data` as the single file `destination_path` of a ``.tar.gz``.

    Reads `data` from its current position to its end in `CHUNK_SIZE` chunks (a
    non-seekable stream is first spooled to `spool_dir` to learn its size).
    Returns the archive in an anonymous temp file under `spool_dir`.
    """
    entries = archive_entries(destination_path)
    size = _remaining_size(data)
    spooled = None
    if size is None:
        spooled = data = _spool(data, spool_dir)
        size = _remaining_size(spooled) or 0
    # small archives stay in memory (no temp file per artifact); large ones spill to disk
    out = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - owned by PackagedArtifact
        max_size=SMALL_BODY, dir=spool_dir
    )
    try:
        sink = _Sink(out, codec)
        _write_archive(sink, data=data, entries=entries, size=size)
        hex_digest = sink.finish()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    finally:
        if spooled is not None:
            spooled.close()
    return PackagedArtifact(file=out, hex=hex_digest, size=sink.size)


async def package_async(
    data: IO[bytes],
    destination_path: str,
    *,
    spool_dir: str | None = None,
    codec: GzipCodec = DEFAULT_CODEC,
) -> PackagedArtifact:
    """`package` in a worker thread, so compression and hashing never block the event loop;
    a body of at most `SMALL_BODY` bytes is packaged on the loop (well under a millisecond,
    less than handing it to a thread and back)."""
    work: Callable[[], PackagedArtifact] = functools.partial(
        package, data, destination_path, spool_dir=spool_dir, codec=codec
    )
    size = _remaining_size(data)
    if size is not None and size <= SMALL_BODY:
        return work()
    return await anyio.to_thread.run_sync(work)
