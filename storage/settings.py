"""Storage settings (flags `--storage-*` and `--artifact-retention-*`), Flux-compatible names.

The controller's config loader composes this class with the other rooms'
(flag > EXTERNALSOURCE_* env > YAML > default). Addresses are kept as the
strings users write (``:9090``, ``0.0.0.0:9090``, ``[::1]:9090``); the two
methods below turn them into what the server binds and what URLs advertise.

Advertised address rule (the same as Flux's `fluxcd/pkg/artifact/config`):
`--storage-adv-addr` is used as is when set; otherwise it is derived from
`--storage-addr` — an empty host becomes ``localhost``, an unspecified host
(``0.0.0.0`` or ``::``) becomes ``$HOSTNAME`` (else the system host name),
any other host is kept, and the port is kept. In a cluster set it to the
artifact Service's DNS name (e.g. ``<svc>.<ns>.svc.cluster.local.``): a pod
host name is not resolvable by Flux controllers.
"""

from __future__ import annotations

import os
import socket

import attrs

BACKEND_CHOICES = ("memory", "filesystem", "s3")


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port); IPv6 hosts in brackets; the host may be empty."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address {address!r} must be [host]:port with a port in 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {address!r}: put an IPv6 host in brackets, e.g. [::]:9090")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _valid_address(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        split_address(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.metadata['flag']}: {exc}") from None


@attrs.frozen
class StorageSettings:
    """Where artifacts are stored, how they are served and how long old ones are kept."""

    storage_backend: str = attrs.field(
        default="memory",
        validator=attrs.validators.in_(BACKEND_CHOICES),
        metadata={
            "flag": "--storage-backend",
            "help": "Artifact storage backend: memory (not persistent), filesystem or s3.",
            "choices": list(BACKEND_CHOICES),
        },
    )
    storage_path: str = attrs.field(
        default="/data",
        metadata={
            "flag": "--storage-path",
            "help": "Root directory of the filesystem storage backend.",
        },
    )
    storage_addr: str = attrs.field(
        default=":9090",
        validator=_valid_address,
        metadata={
            "flag": "--storage-addr",
            "help": "Address the artifact HTTP server listens on ([host]:port).",
        },
    )
    storage_adv_addr: str = attrs.field(
        default="",
        metadata={
            "flag": "--storage-adv-addr",
            "help": "Address written into artifact URLs (host[:port], e.g. the Service DNS name);"
            " derived from --storage-addr when empty.",
        },
    )
    artifact_retention_ttl: float = attrs.field(
        default=60.0,
        validator=attrs.validators.ge(0),
        metadata={
            "flag": "--artifact-retention-ttl",
            "help": "How long superseded artifacts are kept for consumers still downloading them.",
            "duration": True,
        },
    )
    artifact_retention_records: int = attrs.field(
        default=2,
        validator=attrs.validators.ge(1),
        metadata={
            "flag": "--artifact-retention-records",
            "help": "Maximum artifacts kept per source after garbage collection,"
            " the current one included.",
        },
    )

    def listen_address(self) -> tuple[str | None, int]:
        """(host, port) for the server to bind; None binds every interface (IPv4 and IPv6)."""
        host, port = split_address(self.storage_addr)
        return (host or None), port

    def advertised_address(self) -> str:
        """The address artifact URLs use (see the module docstring for the derivation rule)."""
        if self.storage_adv_addr:
            return self.storage_adv_addr
        host, port = split_address(self.storage_addr)
        if not host:
            host = "localhost"
        elif host in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            host = os.environ.get("HOSTNAME") or socket.gethostname()
        return join_address(host, port)
