"""Running the emulator on a real socket, and pointing clients at it.

`run_emulator()` is what both the pytest fixtures and integration tests that
start separate controller processes use: it serves an `Emulator` on
127.0.0.1 (random port), installs the CRDs the controller needs, and on exit
ends every open watch first (aiohttp would otherwise wait for streaming
handlers before shutting down). `write_kubeconfig()` produces the file a
controller process or kr8s reads (bearer token auth, one context).

CRDs: Flux's ExternalArtifact from `<repo>/../shared/flux/` and ours from
`manifests/crd/*.yaml` (as installed by users) or, while that directory is
empty, from the copy shipped as package data in `controller/api/crd/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import kmock
import yaml

from tests.harness.emulator import Emulator

REPO = pathlib.Path(__file__).resolve().parents[2]
FLUX_CRD = REPO.parent / "shared" / "flux" / "externalartifacts.source.toolkit.fluxcd.io.yaml"
TOKEN = "emulator-token"  # a fixed test credential, only ever sent to the emulator


def default_crds() -> list[pathlib.Path]:
    """The CRD files a cluster running the controller has: ours and Flux's ExternalArtifact."""
    ours = sorted((REPO / "manifests" / "crd").glob("*.yaml"))
    if not ours:
        ours = sorted((REPO / "controller" / "api" / "crd").glob("*.yaml"))
    return [*ours, FLUX_CRD]


@contextlib.asynccontextmanager
async def run_emulator(
    *,
    crds: Iterable[pathlib.Path | str | dict[str, Any]] | None = None,
    bookmark_interval: float = 60.0,
    port: int | None = None,
) -> AsyncIterator[Emulator]:
    """Serve an emulator with `crds` (default: `default_crds()`) installed; yields it (`.url`)."""
    emulator = Emulator()
    emulator.bookmark_interval = bookmark_interval
    for crd in default_crds() if crds is None else crds:
        emulator.install_crd(crd)
    async with emulator, kmock.Server(emulator, port=port):
        try:
            yield emulator
        finally:
            emulator.close_watches()
            async with asyncio.timeout(5):
                while emulator.hub.open_streams:
                    await asyncio.sleep(0.001)


def kubeconfig(url: str, *, namespace: str = "default", token: str = TOKEN) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
            }
        ],
        "current-context": "emulator",
    }


def write_kubeconfig(
    path: pathlib.Path, url: str, *, namespace: str = "default", token: str = TOKEN
) -> pathlib.Path:
    path.write_text(yaml.safe_dump(kubeconfig(url, namespace=namespace, token=token)))
    return path
