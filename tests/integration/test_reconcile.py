"""The product end to end: ExternalSource → artifact served → ExternalArtifact Flux accepts."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
from typing import Any

import aiohttp
import pytest

from controller.api.crd import load_crd
from tests.harness import FLUX_CRD, run_emulator
from tests.integration.conftest import NS, Controller, free_port, run_controller


def source(name: str, url: str, **spec: Any) -> dict[str, Any]:
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


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == type_:
            return dict(cond)
    return None


def ready(ctl: Controller, name: str, status: str = "True") -> Any:
    def check() -> Any:
        cond = condition(ctl.source(name), "Ready")
        return cond is not None and cond["status"] == status and cond

    return check


async def download(url: str) -> tuple[int, bytes]:
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
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return files


async def test_source_becomes_ready_and_flux_can_consume_the_artifact(
    controller: Controller, origin: Any
) -> None:
    origin.set("/flags", body=b'{"beta": true}', etag='"v1"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))

    status = controller.source("flags")["status"]  # type: ignore[index]
    artifact = status["artifact"]
    assert artifact["revision"] == f"latest@{artifact['digest']}"
    assert artifact["path"].startswith(f"externalsource/{NS}/flags/")
    assert status["observedGeneration"] == 1
    assert status["lastHandledETag"] == '"v1"'
    # the ExternalArtifact passed Flux's real CRD schema on the way in
    ea = controller.artifact("flags")
    assert ea is not None
    assert ea["spec"]["sourceRef"] == {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "name": "flags",
        "namespace": NS,
    }
    assert ea["metadata"]["ownerReferences"][0]["controller"] is True
    assert ea["status"]["artifact"]["digest"] == artifact["digest"]
    assert condition(ea, "Ready")["status"] == "True"  # type: ignore[index]
    code, blob = await download(artifact["url"])
    assert code == 200
    assert extract_like_flux(blob, artifact["digest"]) == {"flags/data.json": b'{"beta": true}'}


def status_patches(controller: Controller) -> list[dict[str, Any]]:
    return [
        w.body["status"]
        for w in controller.api.writes()
        if w.resource == "externalsources" and w.subresource == "status"
    ]


async def test_a_quick_change_writes_one_final_status(controller: Controller, origin: Any) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    assert len(status_patches(controller)) == 1  # no progress patch for a change this quick
    final = {c["type"] for c in controller.source("flags")["status"]["conditions"]}  # type: ignore[index]
    assert final == {"Ready", "ArtifactInStorage"}


async def test_a_slow_change_shows_progress_then_one_final_status(
    controller: Controller, origin: Any
) -> None:
    """--progress-report-delay is 0.3 s here: a 1 s origin is still fetching after it."""
    origin.set("/flags", body=b"{}", etag='"v1"')
    origin.mode("/flags", delay=1.0)
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    patches = status_patches(controller)
    assert len(patches) == 2  # one progress patch, one final patch
    progress = {c["type"]: c for c in patches[0]["conditions"]}
    assert progress["Fetching"]["status"] == "True"
    assert progress["Reconciling"]["reason"] == "Progressing"
    assert progress["Ready"]["status"] == "Unknown"
    final = {c["type"] for c in controller.source("flags")["status"]["conditions"]}  # type: ignore[index]
    assert final == {"Ready", "ArtifactInStorage"}


async def test_unchanged_origin_costs_no_api_write(controller: Controller, origin: Any) -> None:
    origin.set("/flags", body=b"{}", etag='"same"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    await controller.idle()
    controller.api.clear_log()
    origin.clear_requests()
    for _ in range(5):
        controller.enqueue("flags")
        await controller.idle()
    assert controller.api.writes() == []
    assert [r.method for r in origin.requests_for("/flags")] == ["HEAD"] * 5


async def test_new_content_publishes_a_new_revision_and_old_ones_expire(
    controller: Controller, origin: Any
) -> None:
    origin.set("/flags", body=b"one", etag='"1"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    first = dict(controller.source("flags")["status"]["artifact"])  # type: ignore[index]

    async def publish(body: bytes) -> dict[str, Any]:
        before = controller.source("flags")["status"]["artifact"]["digest"]  # type: ignore[index]
        origin.set("/flags", body=body, etag=f'"{body.decode()}"')
        controller.enqueue("flags")

        def changed() -> Any:
            artifact = controller.source("flags")["status"]["artifact"]  # type: ignore[index]
            return artifact["digest"] != before and artifact

        return dict(await controller.wait_for(changed))

    second = await publish(b"two")
    ea = controller.artifact("flags")
    assert ea["status"]["artifact"]["revision"] == second["revision"]  # type: ignore[index]
    # within --artifact-retention-ttl the previous artifact stays downloadable
    assert (await download(first["url"]))[0] == 200
    await asyncio.sleep(1.2)
    await publish(b"three")
    # after the TTL only the current artifact remains
    assert (await download(first["url"]))[0] == 404
    assert (await download(second["url"]))[0] == 404


async def test_origin_down_keeps_serving_the_last_good_artifact(
    controller: Controller, origin: Any
) -> None:
    origin.set("/flags", body=b"good", etag='"g"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    good = controller.source("flags")["status"]["artifact"]  # type: ignore[index]

    origin.mode("/flags", status=503)
    controller.enqueue("flags")
    failed = await controller.wait_for(ready(controller, "flags", "False"))
    assert failed["reason"] != "Succeeded"
    reconciling = condition(controller.source("flags"), "Reconciling")
    assert reconciling is not None
    assert reconciling["reason"] == "ProgressingWithRetry"
    assert controller.artifact("flags")["status"]["artifact"] == good  # type: ignore[index]
    code, blob = await download(good["url"])
    assert code == 200
    assert hashlib.sha256(blob).hexdigest() == good["digest"].split(":")[1]

    origin.mode("/flags")
    await controller.wait_for(ready(controller, "flags"), timeout=15)


def without_cel_rules(schema: Any) -> Any:
    """The CRD as an API server that skips x-kubernetes-validations would apply it."""
    if isinstance(schema, dict):
        return {
            k: without_cel_rules(v) for k, v in schema.items() if k != "x-kubernetes-validations"
        }
    if isinstance(schema, list):
        return [without_cel_rules(v) for v in schema]
    return schema


async def test_crd_rejects_a_short_interval_like_a_real_api_server(
    controller: Controller, origin: Any
) -> None:
    with pytest.raises(Exception, match=r"spec\.interval"):
        controller.create(source("bad", origin.url("/x"), interval="30s"))


async def test_invalid_spec_stalls_with_the_field_when_the_crd_rule_is_bypassed(
    origin: Any,
) -> None:
    crds = [without_cel_rules(load_crd()), FLUX_CRD]
    async with run_emulator(crds=crds) as k8s, run_controller(k8s) as ctl:
        ctl.create(source("bad", origin.url("/x"), interval="30s"))
        stalled = await ctl.wait_for(
            lambda: (c := condition(ctl.source("bad"), "Stalled")) and c["status"] == "True" and c
        )
        assert stalled["reason"] == "InvalidSpec"
        assert "spec.interval" in stalled["message"]
        assert ctl.artifact("bad") is None
        assert origin.requests == []


async def test_requested_reconcile_and_suspend(controller: Controller, origin: Any) -> None:
    origin.set("/flags", body=b"a", etag='"a"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    controller.patch(
        "flags",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}}},
    )
    await controller.wait_for(
        lambda: controller.source("flags")["status"].get("lastHandledReconcileAt") == "now-1"  # type: ignore[index]
    )
    controller.patch("flags", {"spec": {"suspend": True}})
    sources = controller.manager.sources
    await controller.wait_for(lambda: sources.get((NS, "flags"))["spec"].get("suspend"))  # type: ignore[index]
    await controller.idle()
    origin.set("/flags", body=b"b", etag='"b"')
    controller.api.clear_log()
    controller.enqueue("flags")
    await controller.idle()
    assert controller.api.writes() == []


async def test_delete_removes_artifacts_and_the_external_artifact(
    controller: Controller, origin: Any
) -> None:
    origin.set("/flags", body=b"x", etag='"x"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    url = controller.source("flags")["status"]["artifact"]["url"]  # type: ignore[index]
    controller.delete("flags")
    await controller.wait_for(lambda: controller.source("flags") is None)
    assert controller.artifact("flags") is None
    assert (await download(url))[0] == 404


async def test_restart_with_memory_storage_rebuilds_the_artifact(k8s: Any, origin: Any) -> None:
    origin.set("/flags", body=b"kept", etag='"k"')
    port = free_port()
    async with run_controller(k8s, port=port) as ctl:
        ctl.create(source("flags", origin.url("/flags")))
        await ctl.wait_for(ready(ctl, "flags"))
        artifact = ctl.source("flags")["status"]["artifact"]  # type: ignore[index]
    seen = len(origin.requests_for("/flags"))
    async with run_controller(k8s, port=port) as ctl:
        # the ETag is unchanged, but the artifact is gone from memory: a full GET rebuilds it
        await ctl.wait_for(
            lambda: any(r.method == "GET" for r in origin.requests_for("/flags")[seen:])
        )
        await ctl.idle()
        code, blob = await download(artifact["url"])
        assert code == 200
        assert hashlib.sha256(blob).hexdigest() == artifact["digest"].split(":")[1]
