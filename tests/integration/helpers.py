"""What the integration tests say about sources: manifests, conditions, status, downloads.

The controller under test runs from `conftest.py` (`run_controller`, the
`controller` fixture); these helpers read what it wrote the way a user or
Flux would: through the object's status, and by downloading the artifact.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable, Mapping
from typing import Any, overload

import aiohttp

from tests.integration.conftest import NS, Controller

JSON = dict[str, Any]


def source(name: str, url: str, **spec: Any) -> JSON:
    """An http ExternalSource manifest in the test namespace; `spec` keys override."""
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "interval": "5m",
            "destinationPath": "flags/data.json",
            "generator": {"type": "http", "http": {"url": url}},
            **spec,
        },
    }


@overload
def status(target: Mapping[str, Any] | None) -> JSON: ...
@overload
def status(target: Controller, name: str) -> JSON: ...
def status(target: Controller | Mapping[str, Any] | None, name: str | None = None) -> JSON:
    """The status of an object, or of the ExternalSource `name` as the API server has it now.

    The object must exist (a test reading the status of a missing object fails here,
    naming it); a status not written yet is `{}`.
    """
    if isinstance(target, Controller):
        assert name is not None
        obj = target.source(name)
        assert obj is not None, f"ExternalSource {NS}/{name} does not exist"
    else:
        obj = target
        assert obj is not None, "the object does not exist"
    found: JSON = obj.get("status") or {}
    return found


def condition(obj: Mapping[str, Any] | None, type_: str) -> JSON | None:
    """A copy of the condition of that type, None when the object or condition is absent."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == type_:
            return dict(cond)
    return None


def ready(ctl: Controller, name: str, expected: str = "True") -> Callable[[], Any]:
    """For `wait_for`: the Ready condition once its status is `expected`."""

    def check() -> Any:
        cond = condition(ctl.source(name), "Ready")
        return cond is not None and cond["status"] == expected and cond

    return check


def stalled(ctl: Controller, name: str) -> Callable[[], Any]:
    """For `wait_for`: the Stalled condition once it is True."""

    def check() -> Any:
        cond = condition(ctl.source(name), "Stalled")
        return cond is not None and cond["status"] == "True" and cond

    return check


def status_patches(ctl: Controller) -> list[JSON]:
    """Every `/status` patch of an ExternalSource the API server received, in order."""
    return [
        w.body["status"]
        for w in ctl.api.writes()
        if w.resource == "externalsources" and w.subresource == "status"
    ]


async def download(url: str) -> tuple[int, bytes]:
    """GET the URL as a consumer would: the status code and the bytes."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read()


def extract_like_flux(blob: bytes, digest: str) -> dict[str, bytes]:
    """kustomize-controller's rules: sha256 of the bytes as served, gzip, relative names."""
    algo, hex_ = digest.split(":")
    assert algo == "sha256"
    assert hashlib.sha256(blob).hexdigest() == hex_
    files = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        for member in tar.getmembers():
            assert not member.name.startswith("/")
            assert ".." not in member.name
            assert member.isfile() or member.isdir()
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name] = extracted.read()
    return files
