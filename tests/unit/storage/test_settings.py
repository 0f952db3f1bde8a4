"""Storage settings (flags, advertised address rule) and the backend factory."""

from __future__ import annotations

import pathlib

import attrs
import pytest

from storage.backend import StorageError
from storage.factory import create_backend
from storage.s3_settings import S3Settings
from storage.settings import StorageSettings


def test_defaults_and_flags() -> None:
    settings = StorageSettings()
    assert (settings.storage_backend, settings.storage_path, settings.storage_addr) == (
        "memory",
        "/data",
        ":9090",
    )
    assert (settings.artifact_retention_ttl, settings.artifact_retention_records) == (60.0, 2)
    flags = {f.metadata["flag"]: f.metadata for f in attrs.fields(StorageSettings)}
    assert set(flags) == {
        "--storage-backend",
        "--storage-path",
        "--storage-addr",
        "--storage-adv-addr",
        "--artifact-retention-ttl",
        "--artifact-retention-records",
    }
    assert flags["--storage-backend"]["choices"] == ["memory", "filesystem", "s3"]
    assert flags["--artifact-retention-ttl"]["duration"] is True
    assert all(meta["help"] for meta in flags.values())


@pytest.mark.parametrize(
    ("addr", "adv", "expected"),
    [
        (":9090", "", "localhost:9090"),
        ("127.0.0.1:8080", "", "127.0.0.1:8080"),
        ("0.0.0.0:9090", "", "pod-7:9090"),
        ("[::]:9090", "", "pod-7:9090"),
        ("[::1]:9090", "", "[::1]:9090"),
        (":9090", "svc.ns.svc.cluster.local.", "svc.ns.svc.cluster.local."),
    ],
)
def test_advertised_address_rule(
    monkeypatch: pytest.MonkeyPatch, addr: str, adv: str, expected: str
) -> None:
    monkeypatch.setenv("HOSTNAME", "pod-7")
    settings = StorageSettings(storage_addr=addr, storage_adv_addr=adv)
    assert settings.advertised_address() == expected


def test_listen_address() -> None:
    assert StorageSettings().listen_address() == (None, 9090)
    assert StorageSettings(storage_addr="127.0.0.1:0").listen_address() == ("127.0.0.1", 0)
    assert StorageSettings(storage_addr="[::1]:9090").listen_address() == ("::1", 9090)


@pytest.mark.parametrize("addr", ["9090", "host:", ":99999", "::1:9090", "host:port"])
def test_invalid_address_names_the_flag(addr: str) -> None:
    with pytest.raises(ValueError, match="--storage-addr"):
        StorageSettings(storage_addr=addr)


def test_invalid_choices_are_refused() -> None:
    with pytest.raises(ValueError):
        StorageSettings(storage_backend="ftp")
    with pytest.raises(ValueError):
        StorageSettings(artifact_retention_records=0)


def test_factory_builds_the_selected_backend(tmp_path: pathlib.Path) -> None:
    memory = create_backend(StorageSettings())
    assert (memory.name, memory.persistent) == ("memory", False)
    filesystem = create_backend(
        StorageSettings(storage_backend="filesystem", storage_path=str(tmp_path))
    )
    assert (filesystem.name, filesystem.persistent) == ("filesystem", True)


def test_factory_reports_an_unusable_s3_backend_naming_the_flag() -> None:
    with pytest.raises(StorageError, match="--s3-bucket") as info:
        create_backend(StorageSettings(storage_backend="s3"), s3=S3Settings())
    assert not info.value.transient
