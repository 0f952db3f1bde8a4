"""Turn a validated ExternalSource spec plus its Secrets into a generator's typed request.

Secrets are read from the source's own namespace only (tenant isolation, as in
Flux); the `SecretReader` seam lets local mode read them from files instead of
the API. Secret values go into the request object and nowhere else: messages
name the Secret and key, never the value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from controller import redaction
from controller.api import reasons
from controller.api.models import (
    DEFAULT_CA_KEY,
    GeneratorSpec,
    HttpGeneratorSpec,
    S3GeneratorSpec,
)
from controller.api.names import SECRETS
from controller.runtime.client import KubeClient
from controller.runtime.keys import ObjectKey
from generators.requests import ClientCertificate, HttpRequest, ProxyConfig, S3ObjectRequest


class SecretNotFoundError(Exception):
    """A referenced Secret or key is missing; transient, since it may be created later."""

    reason = reasons.SECRET_NOT_FOUND
    transient = True
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The decoded data of a Secret, or None when it does not exist."""


class ApiSecretReader:
    """Reads a Secret from the watched-Secrets cache when it is there (labelled
    `reconcile.fluxcd.io/watch: Enabled`), else with a direct GET."""

    def __init__(
        self, kube: KubeClient, cache: Callable[[ObjectKey], Mapping[str, Any] | None] | None = None
    ) -> None:
        self._kube = kube
        self._cache = cache

    async def read(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        secret = self._cache(ObjectKey(namespace, name)) if self._cache is not None else None
        if secret is None:
            secret = await self._kube.get(SECRETS, namespace, name)
        if secret is None:
            return None
        return decode_secret(secret)


def decode_secret(secret: Mapping[str, Any]) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


async def build_request(
    secrets: SecretReader, *, namespace: str, generator: GeneratorSpec, timeout: float
) -> HttpRequest | S3ObjectRequest:
    """The request for `spec.generator` (the spec has passed validation)."""
    if generator.s3 is not None:
        return await _s3_request(secrets, namespace=namespace, s3=generator.s3, timeout=timeout)
    assert generator.http is not None
    return await _http_request(secrets, namespace=namespace, http=generator.http, timeout=timeout)


async def _http_request(
    secrets: SecretReader, *, namespace: str, http: HttpGeneratorSpec, timeout: float
) -> HttpRequest:
    headers: dict[str, str] = {}
    if ref := http.headers_secret_ref:
        data = await _secret(secrets, namespace, ref.name)
        headers = {k: v.decode().strip() for k, v in sorted(data.items())}
    ca_bundle = None
    if ca_ref := http.ca_bundle_secret_ref:
        ca_bundle = await _key(secrets, namespace, ca_ref.name, ca_ref.key)
    client_cert = None
    if ref := http.cert_secret_ref:
        data = await _secret(secrets, namespace, ref.name)
        cert, key = _require(data, ref.name, "tls.crt"), _require(data, ref.name, "tls.key")
        client_cert = ClientCertificate(cert_pem=cert, key_pem=key)
        if ca_bundle is None and DEFAULT_CA_KEY in data:
            ca_bundle = data[DEFAULT_CA_KEY]
    proxy = None
    if ref := http.proxy_secret_ref:
        data = await _secret(secrets, namespace, ref.name)
        proxy = ProxyConfig(
            address=_require(data, ref.name, "address").decode().strip(),
            username=data["username"].decode() if "username" in data else None,
            password=data["password"].decode() if "password" in data else None,
        )
    return HttpRequest(
        url=http.url,
        method=http.method,
        headers=headers,
        body=http.body.encode() if http.body is not None else None,
        ca_bundle=ca_bundle,
        client_cert=client_cert,
        proxy=proxy,
        insecure_skip_verify=http.insecure_skip_verify,
        timeout=timeout,
    )


async def _s3_request(
    secrets: SecretReader, *, namespace: str, s3: S3GeneratorSpec, timeout: float
) -> S3ObjectRequest:
    access_key = secret_key = None
    if ref := s3.credentials_secret_ref:
        data = await _secret(secrets, namespace, ref.name)
        access_key = _require(data, ref.name, "accesskey").decode().strip()
        secret_key = _require(data, ref.name, "secretkey").decode().strip()
    ca_bundle = None
    if ca_ref := s3.ca_bundle_secret_ref:
        ca_bundle = await _key(secrets, namespace, ca_ref.name, ca_ref.key)
    return S3ObjectRequest(
        bucket=s3.bucket,
        key=s3.key,
        endpoint=s3.endpoint,
        region=s3.region,
        access_key=access_key,
        secret_key=secret_key,
        ca_bundle=ca_bundle,
        path_style=s3.path_style,
        insecure_skip_verify=s3.insecure_skip_verify,
        timeout=timeout,
    )


def request_description(request: HttpRequest) -> dict[str, Any]:
    """The JSON a pre-request hook reads on stdin: {url, method, headers, body}."""
    return {
        "url": request.url,
        "method": request.method,
        "headers": dict(request.headers),
        "body": request.body.decode(errors="replace") if request.body is not None else None,
    }


def apply_description(request: HttpRequest, description: Mapping[str, Any]) -> HttpRequest:
    """A pre-request hook's output applied back onto the request (unknown keys ignored)."""
    body = description.get("body", None)
    headers = description.get("headers") or {}
    return attrs.evolve(
        request,
        url=str(description.get("url") or request.url),
        method=str(description.get("method") or request.method).upper(),
        headers={str(k): str(v) for k, v in headers.items()},
        body=str(body).encode() if body is not None else None,
    )


async def _secret(secrets: SecretReader, namespace: str, name: str) -> Mapping[str, bytes]:
    data = await secrets.read(namespace, name)
    if data is None:
        raise SecretNotFoundError(f"Secret '{namespace}/{name}' not found")
    redaction.register_secret(data)  # every message of this reconcile is scrubbed of them
    return data


async def _key(secrets: SecretReader, namespace: str, name: str, key: str) -> bytes:
    return _require(await _secret(secrets, namespace, name), name, key)


def _require(data: Mapping[str, bytes], name: str, key: str) -> bytes:
    if key not in data:
        raise SecretNotFoundError(f"Secret '{name}' has no key '{key}'")
    return data[key]
