"""Hooks and CEL through the whole controller: what Flux receives is the transformed data."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures.sidecar import SidecarProcess
from tests.integration.conftest import run_controller
from tests.integration.helpers import download, extract_like_flux, ready, source, stalled, status

TO_CONFIGMAP = (
    '{apiVersion: "v1", kind: "ConfigMap", metadata: {name: "flags"}, '
    "data: (.items | map({(.name): (.enabled | tostring)}) | add)}"
)


def sidecar_flags(sidecar: SidecarProcess) -> tuple[str, ...]:
    """The controller's flags for the hooks sidecar of the test."""
    return (
        f"--hooks-whitelist={sidecar.whitelist_path}",
        f"--hooks-endpoint={sidecar.url}",
        f"--hooks-token-file={sidecar.token_file}",
    )


async def test_post_request_jq_hook_publishes_the_transformed_content(
    k8s: Any, origin: Any, hooks_sidecar: SidecarProcess
) -> None:
    origin.set(
        "/flags",
        body=b'{"items": [{"name": "beta", "enabled": true}, {"name": "dark", "enabled": false}]}',
        etag='"v1"',
    )
    async with run_controller(k8s, *sidecar_flags(hooks_sidecar)) as ctl:
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
        artifact = status(ctl, "flags")["artifact"]
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
    async with run_controller(k8s, *sidecar_flags(hooks_sidecar)) as ctl:
        spec = {
            "hooks": {"postRequest": [{"name": "shell", "command": "sh", "args": ["-c", "id"]}]}
        }
        ctl.create(source("bad", origin.url("/flags"), **spec))
        stall = await ctl.wait_for(stalled(ctl, "bad"))
        assert stall["reason"] == "HookNotAllowed"
        assert "sh" in stall["message"]
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
        artifact = status(ctl, "cel")["artifact"]
        _, blob = await download(artifact["url"])
        assert json.loads(extract_like_flux(blob, artifact["digest"])["flags/data.json"]) == ["a"]


async def test_invalid_cel_expression_stalls(k8s: Any, origin: Any) -> None:
    origin.set("/items", body=b"{}", etag='"v1"')
    async with run_controller(k8s) as ctl:
        spec = {"transform": {"cel": "data.items.filter(i, "}}
        ctl.create(source("cel", origin.url("/items"), **spec))
        stall = await ctl.wait_for(stalled(ctl, "cel"))
        assert stall["reason"] == "InvalidCELExpression"
        assert ctl.artifact("cel") is None
