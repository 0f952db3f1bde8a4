"""Typed fetch requests, one per generator type, built by the controller.

The controller resolves Secrets and the ExternalSource spec into these plain
values; generators never see a Kubernetes object. Secret material lives here
only in memory and must never be rendered into a message (``repr`` hides it,
and shows URLs without userinfo or query).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from generators.http_errors import redact_url


def _shown(url: str) -> str:
    return repr(redact_url(url))


@attrs.frozen
class ClientCertificate:
    """PEM client certificate and key for mTLS (from `certSecretRef`)."""

    cert_pem: bytes = attrs.field(repr=False)
    key_pem: bytes = attrs.field(repr=False)


@attrs.frozen
class ProxyConfig:
    """An HTTP(S) proxy (from `proxySecretRef`: address, username, password)."""

    address: str = attrs.field(repr=_shown)
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class HttpRequest:
    """Everything the HTTP generator needs for one fetch."""

    url: str = attrs.field(repr=_shown)
    method: str = "GET"
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: bytes | None = attrs.field(default=None, repr=False)
    ca_bundle: bytes | None = attrs.field(default=None, repr=False)
    client_cert: ClientCertificate | None = None
    proxy: ProxyConfig | None = None
    insecure_skip_verify: bool = False
    #: overall deadline of the whole fetch (HEAD + GET + redirects), seconds
    timeout: float = 60.0


@attrs.frozen
class S3ObjectRequest:
    """One object in an S3-compatible bucket (generator type `s3`)."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = attrs.field(default=None, repr=False)
    secret_key: str | None = attrs.field(default=None, repr=False)
    ca_bundle: bytes | None = attrs.field(default=None, repr=False)
    path_style: bool = False
    insecure_skip_verify: bool = False
    timeout: float = 60.0
