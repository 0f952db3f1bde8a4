"""Artifact naming: storage keys, revisions and the URLs consumers download from.

Every name a consumer sees is derived here so that the key layout, the
revision string and the URL can never drift apart:

- key:      ``externalsource/<namespace>/<name>/<hex>.tar.gz`` (content-addressed,
  so a key never changes meaning and a reader never sees a half-replaced file);
- revision: ``latest@sha256:<hex>`` (RFC-0005, as Flux's source-watcher writes it);
- URL:      ``http://<advertised address>/<key>``.

`check_key` is the one definition of a well-formed key; backends and the
artifact server both call it so a key that could escape a storage root is
refused before any I/O.
"""

from __future__ import annotations

import re

KEY_ROOT = "externalsource"
ARTIFACT_SUFFIX = ".tar.gz"

_HEX = re.compile(r"[0-9a-f]{64}")
_ARTIFACT_FILE = re.compile(r"([0-9a-f]{64})\.tar\.gz")


def check_key(key: str) -> str:
    """Return `key` if it is a relative slash-separated path that stays where it is put.

    Refused: empty keys, a leading or trailing ``/``, empty segments (``a//b``),
    ``.`` and ``..`` segments, backslashes and NUL bytes.
    """
    if not key or key.startswith("/") or key.endswith("/"):
        raise ValueError(f"invalid storage key {key!r}: must be a non-empty relative path")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"invalid storage key {key!r}: backslash or NUL byte")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"invalid storage key {key!r}: empty, '.' or '..' segment")
    return key


def _check_segment(kind: str, value: str) -> None:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid {kind} {value!r} for an artifact key")


def source_prefix(namespace: str, name: str) -> str:
    """The key prefix (with trailing slash) under which all of one source's artifacts live."""
    _check_segment("namespace", namespace)
    _check_segment("name", name)
    return f"{KEY_ROOT}/{namespace}/{name}/"


def artifact_key(namespace: str, name: str, hex: str) -> str:
    """``externalsource/<namespace>/<name>/<hex>.tar.gz`` for a sha256 hex digest."""
    if not _HEX.fullmatch(hex):
        raise ValueError("artifact digest must be 64 lowercase hex characters")
    return check_key(f"{source_prefix(namespace, name)}{hex}{ARTIFACT_SUFFIX}")


def digest_hex_of_key(key: str) -> str | None:
    """The sha256 hex an artifact key is named after, or None for any other key."""
    match = _ARTIFACT_FILE.fullmatch(key.rpartition("/")[2])
    return match.group(1) if match else None


def revision(hex: str) -> str:
    """The ExternalArtifact revision: ``latest@sha256:<hex>``."""
    if not _HEX.fullmatch(hex):
        raise ValueError("artifact digest must be 64 lowercase hex characters")
    return f"latest@sha256:{hex}"


def artifact_url(advertised_address: str, key: str) -> str:
    """``http://<advertised address>/<key>``; an address that already has a scheme is kept as is."""
    check_key(key)
    base = advertised_address.rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    return f"{base}/{key}"
