"""Keys, revisions and URLs exactly as the ExternalArtifact status carries them."""

from __future__ import annotations

import pytest

from storage.naming import (
    artifact_key,
    artifact_url,
    check_key,
    digest_hex_of_key,
    revision,
    source_prefix,
)

HEX = "0123456789abcdef" * 4


def test_artifact_key_layout() -> None:
    assert artifact_key("team-a", "flags", HEX) == f"externalsource/team-a/flags/{HEX}.tar.gz"
    assert source_prefix("team-a", "flags") == "externalsource/team-a/flags/"
    assert artifact_key("team-a", "flags", HEX).startswith(source_prefix("team-a", "flags"))


def test_revision_and_url() -> None:
    key = artifact_key("ns", "n", HEX)
    assert revision(HEX) == f"latest@sha256:{HEX}"
    assert (
        artifact_url("svc.ns.svc.cluster.local.", key) == f"http://svc.ns.svc.cluster.local./{key}"
    )
    assert artifact_url("localhost:9090", key) == f"http://localhost:9090/{key}"
    assert artifact_url("https://cdn.example.com/", key) == f"https://cdn.example.com/{key}"


def test_digest_hex_of_key() -> None:
    assert digest_hex_of_key(artifact_key("ns", "n", HEX)) == HEX
    assert digest_hex_of_key("externalsource/ns/n/notahash.tar.gz") is None
    assert digest_hex_of_key(f"externalsource/ns/n/{HEX}.tgz") is None


@pytest.mark.parametrize("bad_hex", ["", "ABCDEF" + HEX[6:], HEX[:-1], HEX + "0", "g" * 64])
def test_hex_must_be_lowercase_sha256(bad_hex: str) -> None:
    with pytest.raises(ValueError):
        artifact_key("ns", "n", bad_hex)
    with pytest.raises(ValueError):
        revision(bad_hex)


@pytest.mark.parametrize(
    ("namespace", "name"), [("", "n"), ("ns", ""), ("a/b", "n"), ("ns", ".."), (".", "n")]
)
def test_namespace_and_name_cannot_change_the_layout(namespace: str, name: str) -> None:
    with pytest.raises(ValueError):
        source_prefix(namespace, name)


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "..", "./a", "a\\b", "a\x00"])
def test_check_key_refuses_escaping_keys(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)
