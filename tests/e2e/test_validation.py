"""Spec validation on a real API server: the invalid specs of the validation tests
(`tests/unit/api/cases.py`) are refused by the CRD (OpenAPI schema + CEL rules) with the field
named, and a spec that gets past an API server without the CEL rules still stalls."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import OUR_CRD, ControlPlane
from tests.e2e.processes import ThreadedOrigin
from tests.e2e.sources import (
    API_VERSION,
    FINALIZER,
    condition,
    get_artifact,
    get_source,
    source_path,
    wait_condition,
)
from tests.unit.api.cases import CASES, Case

DEFAULT_URL = "https://api.example.com/flags"
REJECTED = [c for c in CASES if c.crd]


def _manifest(case: Case, *, name: str, namespace: str, url: str) -> dict[str, Any]:
    spec = copy.deepcopy(case.spec)
    # never let a test aim at a real host: the default URL becomes the loopback origin
    http = spec.get("generator", {}).get("http") if isinstance(spec, dict) else None
    if isinstance(http, dict) and http.get("url") == DEFAULT_URL:
        http["url"] = url
    return {
        "apiVersion": API_VERSION,
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _create(
    plane: ControlPlane, manifest: dict[str, Any], *, dry_run: bool
) -> tuple[int, dict[str, Any]]:
    namespace = manifest["metadata"]["namespace"]
    response = plane.api.post(
        source_path(namespace),
        params={"dryRun": "All"} if dry_run else None,
        content=json.dumps(manifest),
        headers={"Content-Type": "application/json"},
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_the_api_server_refuses_every_invalid_spec_naming_the_field(
    control_plane: ControlPlane, e2e_namespace: str, e2e_origin: ThreadedOrigin
) -> None:
    refused_elsewhere = []
    for case in REJECTED:
        manifest = _manifest(
            case, name=f"bad-{case.id}"[:63], namespace=e2e_namespace, url=e2e_origin.url("/x")
        )
        code, body = _create(control_plane, manifest, dry_run=True)
        causes = body.get("details", {}).get("causes", [])
        if code != 422 or not any(_names(cause, case.path) for cause in causes):
            fields = [c.get("field") for c in causes]
            refused_elsewhere.append(f"{case.id} ({case.path}): {code} {fields} {body}")
    assert not refused_elsewhere, "\n".join(refused_elsewhere)


def _names(cause: dict[str, Any], path: str) -> bool:
    """Whether an API server error cause names the field `path`: the cause's field is
    `path` (or inside it), or a CEL rule on a parent (which the API server reports at
    the parent unless the rule sets `fieldPath`) whose message names the last segment."""
    field = cause.get("field", "")
    if field.startswith(path):
        return True
    last = re.split(r"[.\[\]]+", path.rstrip("]"))[-1]
    return path.startswith(field) and last in cause.get("message", "")


@pytest.fixture
def crd_without_cel_rules(control_plane: ControlPlane) -> Iterator[None]:
    """Our CRD as an API server that skips `x-kubernetes-validations` would apply it;
    the real CRD is put back afterwards."""
    original = yaml.safe_load(OUR_CRD.read_text())
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=yaml.safe_dump(_without_cel_rules(original)),
    )
    try:
        yield
    finally:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(OUR_CRD))


def _without_cel_rules(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_cel_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"
        }
    if isinstance(node, list):
        return [_without_cel_rules(v) for v in node]
    return node


def test_a_spec_past_a_crd_without_cel_rules_still_stalls(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
    crd_without_cel_rules: None,
) -> None:
    """Every case that only a CEL rule refuses is applied for real and must stall with its
    field named, without fetching anything."""
    ns = e2e_namespace
    make_controller()
    admitted = {}
    for case in REJECTED:
        manifest = _manifest(case, name=case.id[:63], namespace=ns, url=e2e_origin.url("/x"))
        code, _ = _create(control_plane, manifest, dry_run=False)
        if code == 201:
            admitted[case.id[:63]] = case
    assert "interval-too-short" in admitted, "the relaxed CRD still refuses interval: 30s"

    for name, case in admitted.items():
        source = wait_condition(control_plane, ns, name, kind="Stalled", timeout=30)
        stalled = condition(source, "Stalled")
        assert stalled is not None
        assert stalled["reason"] == "InvalidSpec", name
        assert case.path in stalled["message"], (name, stalled["message"])
        ready = condition(source, "Ready")
        assert ready is not None
        assert ready["status"] == "False", name
        assert get_artifact(control_plane, ns, name) is None
        current = get_source(control_plane, ns, name)
        assert current is not None
        assert FINALIZER in current["metadata"]["finalizers"]
    assert e2e_origin.requests == []
