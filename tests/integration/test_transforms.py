"""Hooks and CEL through the whole controller: what Flux receives is the transformed data."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures.sidecar import SidecarProcess
from tests.integration.conftest import run_controller
from tests.integration.test_reconcile import condition, download, extract_like_flux, ready, source

TO_CONFIGMAP = (
    '{apiVersion: "v1", kind: "ConfigMap", metadata: {name: "flags"}, '
    "data: (.items | map({(.name): (.enabled | tostring)}) | add)}"
)


async def test_post_request_jq_hook_publishes_the_transformed_content(
    k8s: Any, origin: Any, hooks_sidecar: SidecarProcess
) -> None:
    origin.set(
        "/flags",
        body=b'{"items": [{"name": "beta", "enabled": true}, {"name": "dark", "enabled": false}]}',
        etag='"v1"',
    )
    flags = (
        f"--hooks-whitelist={hooks_sidecar.whitelist_path}",
        f"--hooks-endpoint={hooks_sidecar.url}",
        f"--hooks-token-file={hooks_sidecar.token_file}",
    )
    async with run_controller(k8s, *flags) as ctl:
        spec = {
            "destinationPath": "flags/configmap.json",
            "hooks": {
                "postRequest": [
                    {"name": "to-configmap", "command": "jq", "args": ["-c", TO_CONFIGMAP]}
                ]
            },
        }
        ctl.create(source("flags", origin.url("/flags"), **spec))
        await ctl.wait_for(ready(ctl, "flags"))
        artifact = ctl.source("flags")["status"]["artifact"]  # type: ignore[index]
        _, blob = await download(artifact["url"])
        files = extract_like_flux(blob, artifact["digest"])
        assert json.loads(files["flags/configmap.json"]) == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "flags"},
            "data": {"beta": "true", "dark": "false"},
        }


async def test_hook_not_in_the_whitelist_stalls_and_publishes_nothing(
    k8s: Any, origin: Any, hooks_sidecar: SidecarProcess
) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    flags = (
        f"--hooks-whitelist={hooks_sidecar.whitelist_path}",
        f"--hooks-endpoint={hooks_sidecar.url}",
        f"--hooks-token-file={hooks_sidecar.token_file}",
    )
    async with run_controller(k8s, *flags) as ctl:
        spec = {
            "hooks": {"postRequest": [{"name": "shell", "command": "sh", "args": ["-c", "id"]}]}
        }
        ctl.create(source("bad", origin.url("/flags"), **spec))
        stalled = await ctl.wait_for(
            lambda: (c := condition(ctl.source("bad"), "Stalled")) and c["status"] == "True" and c
        )
        assert stalled["reason"] == "HookNotAllowed"
        assert "sh" in stalled["message"]
        assert ctl.artifact("bad") is None


async def test_cel_transform_filters_the_data(k8s: Any, origin: Any) -> None:
    origin.set(
        "/items",
        body=b'{"items": [{"n": "a", "on": true}, {"n": "b", "on": false}]}',
        etag='"v1"',
    )
    async with run_controller(k8s) as ctl:
        spec = {"transform": {"cel": "data.items.filter(i, i.on).map(i, i.n)"}}
        ctl.create(source("cel", origin.url("/items"), **spec))
        await ctl.wait_for(ready(ctl, "cel"), timeout=20)
        artifact = ctl.source("cel")["status"]["artifact"]  # type: ignore[index]
        _, blob = await download(artifact["url"])
        assert json.loads(extract_like_flux(blob, artifact["digest"])["flags/data.json"]) == ["a"]


async def test_invalid_cel_expression_stalls(k8s: Any, origin: Any) -> None:
    origin.set("/items", body=b"{}", etag='"v1"')
    async with run_controller(k8s) as ctl:
        spec = {"transform": {"cel": "data.items.filter(i, "}}
        ctl.create(source("cel", origin.url("/items"), **spec))
        stalled = await ctl.wait_for(
            lambda: (c := condition(ctl.source("cel"), "Stalled")) and c["status"] == "True" and c
        )
        assert stalled["reason"] == "InvalidCELExpression"
        assert ctl.artifact("cel") is None
