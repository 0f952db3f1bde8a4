"""A new user's first source on a real API server: both CRDs, Ready, `kubectl wait`, a child
that Flux accepts and an artifact that downloads and verifies as Flux's fetcher does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx

from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import ControlPlane
from tests.e2e.processes import HooksSidecar, ThreadedOrigin, fetch_artifact
from tests.e2e.sources import (
    API_VERSION,
    FINALIZER,
    condition,
    external_source,
    get_artifact,
    get_source,
)


def test_source_becomes_ready_and_publishes_a_verifiable_artifact(
    control_plane: ControlPlane,
    make_controller: MakeController,
    make_sidecar: Callable[..., HooksSidecar],
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    e2e_origin.set("/flags", body=b'{"items": [{"name": "a", "on": true}]}', etag='"v1"')
    sidecar = make_sidecar()
    controller = make_controller(*sidecar.controller_flags())
    control_plane.apply(
        external_source(
            "flags",
            namespace=ns,
            url=e2e_origin.url("/flags"),
            destinationPath="flags/flags.json",
            hooks={"postRequest": [{"name": "items", "command": "jq", "args": ["-c", ".items"]}]},
        )
    )

    waited = control_plane.kubectl(
        "wait", "--for=condition=Ready", "-n", ns, "externalsource/flags", "--timeout=30s"
    )
    assert "condition met" in waited.stdout

    source = get_source(control_plane, ns, "flags")
    assert source is not None
    assert FINALIZER in source["metadata"]["finalizers"]
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["reason"] == "Succeeded"
    artifact = source["status"]["artifact"]
    hex_digest = artifact["digest"].removeprefix("sha256:")
    assert re.fullmatch(r"[0-9a-f]{64}", hex_digest)
    assert artifact["revision"] == f"latest@sha256:{hex_digest}"
    assert artifact["path"] == f"externalsource/{ns}/flags/{hex_digest}.tar.gz"
    assert artifact["url"] == controller.artifact_url(artifact["path"])
    assert hex_digest[:12] in ready["message"] or artifact["revision"] in ready["message"]

    child = get_artifact(control_plane, ns, "flags")
    assert child is not None, "no ExternalArtifact published"
    owners = child["metadata"]["ownerReferences"]
    assert owners == [
        {
            "apiVersion": API_VERSION,
            "kind": "ExternalSource",
            "name": "flags",
            "uid": source["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == (
        "externalsource-controller"
    )
    assert child["spec"]["sourceRef"] == {
        "apiVersion": API_VERSION,
        "kind": "ExternalSource",
        "name": "flags",
        "namespace": ns,
    }
    published = child["status"]["artifact"]
    for key in ("digest", "revision", "path", "url", "size"):
        assert published[key] == artifact[key], key
    child_ready = condition(child, "Ready")
    assert child_ready is not None
    assert child_ready["status"] == "True"

    files = fetch_artifact(published["url"], digest=published["digest"])
    assert list(files) == ["flags/flags.json"]
    assert json.loads(files["flags/flags.json"]) == [{"name": "a", "on": True}]
    assert published["size"] == len(httpx.get(published["url"], timeout=10).content)

    listed = control_plane.kubectl("get", "externalsources", "-n", ns).stdout
    assert re.search(rf"flags\s+True\s+.*latest@sha256:{hex_digest[:12]}", listed), listed
