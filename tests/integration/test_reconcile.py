"""The product end to end: ExternalSource → artifact served → ExternalArtifact Flux accepts."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from controller.api.crd import load_crd
from tests.harness import FLUX_CRD, run_emulator
from tests.integration.conftest import NS, Controller, free_port, run_controller
from tests.integration.helpers import (
    condition,
    download,
    extract_like_flux,
    ready,
    source,
    stalled,
    status,
    status_patches,
)


async def test_source_becomes_ready_and_flux_can_consume_the_artifact(
    controller: Controller, origin: Any
) -> None:
    origin.set("/flags", body=b'{"beta": true}', etag='"v1"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))

    written = status(controller, "flags")
    artifact = written["artifact"]
    assert artifact["revision"] == f"latest@{artifact['digest']}"
    assert artifact["path"].startswith(f"externalsource/{NS}/flags/")
    assert written["observedGeneration"] == 1
    assert written["lastHandledETag"] == '"v1"'
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
    assert status(ea)["artifact"]["digest"] == artifact["digest"]
    ea_ready = condition(ea, "Ready")
    assert ea_ready is not None
    assert ea_ready["status"] == "True"
    code, blob = await download(artifact["url"])
    assert code == 200
    assert extract_like_flux(blob, artifact["digest"]) == {"flags/data.json": b'{"beta": true}'}


async def test_a_quick_change_writes_one_final_status(controller: Controller, origin: Any) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    controller.create(source("flags", origin.url("/flags")))
    await controller.wait_for(ready(controller, "flags"))
    assert len(status_patches(controller)) == 1  # no progress patch for a change this quick
    final = {c["type"] for c in status(controller, "flags")["conditions"]}
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
    final = {c["type"] for c in status(controller, "flags")["conditions"]}
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
    first = dict(status(controller, "flags")["artifact"])

    async def publish(body: bytes) -> dict[str, Any]:
        before = status(controller, "flags")["artifact"]["digest"]
        origin.set("/flags", body=body, etag=f'"{body.decode()}"')
        controller.enqueue("flags")

        def changed() -> Any:
            artifact = status(controller, "flags")["artifact"]
            return artifact["digest"] != before and artifact

        return dict(await controller.wait_for(changed))

    second = await publish(b"two")
    assert status(controller.artifact("flags"))["artifact"]["revision"] == second["revision"]
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
    good = status(controller, "flags")["artifact"]

    origin.mode("/flags", status=503)
    controller.enqueue("flags")
    failed = await controller.wait_for(ready(controller, "flags", "False"))
    assert failed["reason"] != "Succeeded"
    reconciling = condition(controller.source("flags"), "Reconciling")
    assert reconciling is not None
    assert reconciling["reason"] == "ProgressingWithRetry"
    assert status(controller.artifact("flags"))["artifact"] == good
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
        stall = await ctl.wait_for(stalled(ctl, "bad"))
        assert stall["reason"] == "InvalidSpec"
        assert "spec.interval" in stall["message"]
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
        lambda: status(controller, "flags").get("lastHandledReconcileAt") == "now-1"
    )
    controller.patch("flags", {"spec": {"suspend": True}})

    def suspended_in_the_cache() -> bool:
        cached = controller.manager.sources.get((NS, "flags"))
        return cached is not None and bool(cached["spec"].get("suspend"))

    await controller.wait_for(suspended_in_the_cache)
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
    url = status(controller, "flags")["artifact"]["url"]
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
        artifact = status(ctl, "flags")["artifact"]
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
