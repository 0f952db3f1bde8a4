"""The rendered pod's hooks wiring, run for real: the token init container's
command, the sidecar started with the rendered args and whitelist ConfigMap
(mount paths mapped to temp dirs), its exec probe, and an authenticated jq
execution through it — for the Helm chart and the kustomize base alike."""

from __future__ import annotations

import base64
import json
import pathlib
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.deploy.rendering import container, find, kustomize, only, render_chart


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pod(source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Deployment, whitelist ConfigMap) as rendered by `source`."""
    objects = render_chart()[0] if source == "chart" else kustomize("base")
    deployment = only(objects, "Deployment")
    volume = next(
        v
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "hooks-whitelist"
    )
    configmap = only(find(objects, "ConfigMap", volume["configMap"]["name"]), "ConfigMap")
    return deployment, configmap


def _localise(values: list[str], mounts: dict[str, pathlib.Path], port: int) -> list[str]:
    """Mount paths -> temp dirs, the loopback port -> a free one."""
    result = []
    for value in values:
        localised = value
        for mount_path, local in mounts.items():
            localised = localised.replace(mount_path, str(local))
        result.append(localised.replace("127.0.0.1:8090", f"127.0.0.1:{port}"))
    return result


@pytest.mark.parametrize("source", ["chart", "kustomize"])
def test_rendered_sidecar_runs_hooks(source: str, tmp_path: pathlib.Path) -> None:
    deployment, configmap = _pod(source)
    mounts = {}
    for c in ("hooks", "hooks-token"):
        for m in container(deployment, c)["volumeMounts"]:
            mounts[m["mountPath"]] = tmp_path / m["name"]
            mounts[m["mountPath"]].mkdir(exist_ok=True)
    (tmp_path / "hooks-whitelist" / "whitelist.yaml").write_text(
        configmap["data"]["whitelist.yaml"], encoding="utf-8"
    )
    port = _free_port()

    init = container(deployment, "hooks-token")
    assert init["command"][0] == "python"
    subprocess.run(
        [sys.executable, *_localise(init["command"][1:], mounts, port)], check=True, timeout=30
    )
    token_file = tmp_path / "hooks-token" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o440
    token = token_file.read_text(encoding="ascii")
    assert len(token) >= 32

    hooks = container(deployment, "hooks")
    binary = pathlib.Path(sys.executable).parent / hooks["command"][0]
    sidecar = subprocess.Popen(
        [str(binary), *_localise(hooks["args"], mounts, port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        probe = [
            sys.executable,
            *_localise(hooks["livenessProbe"]["exec"]["command"][1:], mounts, port),
        ]
        deadline = time.monotonic() + 20
        while subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode:
            assert sidecar.poll() is None, sidecar.stderr.read().decode() if sidecar.stderr else ""
            assert time.monotonic() < deadline, "sidecar never became healthy"
            time.sleep(0.1)
        body = {
            "command": "jq",
            "args": ["-c", ".items | map(.name)"],
            "env": {},
            "stdin": base64.b64encode(b'{"items": [{"name": "a"}, {"name": "b"}]}').decode(),
            "timeout": 10,
        }
        url = f"http://127.0.0.1:{port}/v1/execute"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            result = json.loads(response.read())
        assert result["exitCode"] == 0, result
        assert base64.b64decode(result["stdout"]).strip() == b'["a","b"]'

        forged = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=15)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=30)
        if sidecar.stderr:
            sidecar.stderr.close()
