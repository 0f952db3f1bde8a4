"""What a Flux consumer does with an artifact, rewritten from fluxcd/pkg for our tests.

`verify_digest` mirrors `http/fetch/archive_fetcher.go` + go-digest (algorithm
prefix, lowercase hex of the exact length, sha256 of the bytes received) and
`untar` mirrors `tar/untar.go` (gzip required; every name relative, non-empty,
no backslash, no leading slash, no ``../``; regular files and directories
only, symlinks skipped). Both raise `ConsumerRejected` with Flux's wording.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import re
import tarfile


class ConsumerRejected(Exception):
    pass


_ALGOS = {
    "sha256": (hashlib.sha256, 64),
    "sha384": (hashlib.sha384, 96),
    "sha512": (hashlib.sha512, 128),
}


def verify_digest(digest: str, body: bytes) -> None:
    if not digest:
        raise ConsumerRejected("empty digest")
    algo, sep, encoded = digest.partition(":")
    if not sep:
        algo, encoded = "sha256", digest
    if algo not in _ALGOS:
        raise ConsumerRejected(f"unsupported digest algorithm {algo!r}")
    factory, length = _ALGOS[algo]
    if not re.fullmatch(rf"[a-f0-9]{{{length}}}", encoded):
        raise ConsumerRejected("invalid checksum digest format")
    if factory(body).hexdigest() != encoded:
        raise ConsumerRejected(f"computed digest doesn't match provided '{digest}'")


def untar(body: bytes, target: pathlib.Path) -> list[str]:
    """Extract like Flux; return the names of the entries written."""
    if body[:2] != b"\x1f\x8b":
        raise ConsumerRejected("requires gzip-compressed body")
    written = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r|gz") as archive:
        for member in archive:
            # Python's tarfile strips a directory's trailing "/"; Go's archive/tar keeps it.
            raw_name = member.name + "/" if member.isdir() else member.name
            if not raw_name or "\\" in raw_name or raw_name.startswith("/") or "../" in raw_name:
                raise ConsumerRejected(f"tar contained invalid name error {raw_name!r}")
            path = target / member.name
            if member.issym():
                continue
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(member.mode | 0o700)
            elif member.isreg():
                path.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None
                path.write_bytes(extracted.read())
            else:
                raise ConsumerRejected(f"unsupported file type {member.type!r} for {raw_name!r}")
            written.append(raw_name)
    return written
