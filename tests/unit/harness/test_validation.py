"""CRD schemas on writes: pruning, defaults, 422 with per-field causes, CEL rules."""

from __future__ import annotations

from typing import Any

import kr8s
import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator
from tests.unit.harness.clients import (
    ExternalArtifact,
    ExternalSource,
    Widget,
    make_widget,
    widget,
)


def causes(err: pytest.ExceptionInfo[kr8s.ServerError]) -> dict[str, str]:
    assert err.value.response is not None
    assert err.value.response.status_code == 422
    assert err.value.status["kind"] == "Status"
    assert err.value.status["reason"] == "Invalid"
    return {c["field"]: c["reason"] for c in err.value.status["details"]["causes"]}


async def test_defaults_are_applied_on_create_and_patch(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a", ports=[{"name": "http"}])
    assert obj.raw["spec"]["size"] == 1
    assert obj.raw["spec"]["interval"] == "5m"
    assert obj.raw["spec"]["ports"] == [{"name": "http", "port": 80}]

    await obj.patch({"spec": {"size": None}})
    assert obj.raw["spec"]["size"] == 1


async def test_unknown_fields_are_pruned(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a", bogus=1, extra={"free": {"form": True}})
    await obj.patch({"status": {"phase": "x", "invented": 1}}, subresource="status")

    assert "bogus" not in obj.raw["spec"]
    assert obj.raw["spec"]["extra"] == {"free": {"form": True}}
    assert obj.raw["status"] == {"phase": "x"}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"color": "pink"}, "spec.color", "FieldValueNotSupported"),
        ({"color": None}, "spec.color", "FieldValueRequired"),
        ({"size": 0}, "spec.size", "FieldValueInvalid"),
        ({"size": "big"}, "spec.size", "FieldValueTypeInvalid"),
        ({"interval": "5 minutes"}, "spec.interval", "FieldValueInvalid"),
        ({"interval": "30s"}, "spec", "FieldValueInvalid"),  # CEL rule on spec
        ({"path": "a/../b"}, "spec.path", "FieldValueInvalid"),  # CEL rule with fieldPath
        ({"ports": [{"name": "a"}, {"name": "a"}]}, "spec.ports[1]", "FieldValueDuplicate"),
        ({"ports": [{"port": 1}]}, "spec.ports[0].name", "FieldValueRequired"),
    ],
)
async def test_invalid_writes_are_rejected_with_the_field(
    widgets: Emulator, kube_api: Api, spec: dict[str, Any], field: str, reason: str
) -> None:
    body = widget("a")
    body["spec"].update(spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(kr8s.ServerError) as err:
        await Widget(body, api=kube_api).create()
    assert causes(err) == {field: reason}
    assert widgets.get_object("widgets", "default", "a") is None

    obj = await make_widget(kube_api, "a")
    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"spec": spec})
    assert causes(err) == {field: reason}
    assert widgets.get_object("widgets", "default", "a")["spec"] == obj.raw["spec"]  # type: ignore[index]


async def test_nullable_and_status_formats(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a", note=None)
    assert obj.raw["spec"]["note"] is None

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"status": {"lastUpdate": "yesterday"}}, subresource="status")
    assert causes(err) == {"status.lastUpdate": "FieldValueInvalid"}
    await obj.patch({"status": {"lastUpdate": "2026-01-02T03:04:05Z"}}, subresource="status")


async def test_message_reads_like_the_api_server(widgets: Emulator, kube_api: Api) -> None:
    body = widget("a", size=0)
    with pytest.raises(kr8s.ServerError) as err:
        await Widget(body, api=kube_api).create()
    assert err.value.status["message"] == (
        'Widget.example.com "a" is invalid: spec.size: Invalid value: 0: '
        "spec.size in body should be greater than or equal to 1"
    )


def source(interval: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "src", "namespace": "default"},
        "spec": {
            "interval": interval,
            "generator": {"type": "http", "http": {"url": "https://api.example.com/x"}},
            **spec,
        },
    }


async def test_external_source_crd_rules(k8s: Emulator, kube_api: Api) -> None:
    with pytest.raises(kr8s.ServerError) as err:
        await ExternalSource(source("30s"), api=kube_api).create()
    assert causes(err) == {"spec.interval": "FieldValueInvalid"}  # the rule's fieldPath
    assert "interval must be at least 1m" in err.value.status["message"]

    obj = ExternalSource(source("5m"), api=kube_api)
    await obj.create()
    assert obj.raw["spec"]["timeout"] == "60s"  # a CRD default
    assert obj.raw["metadata"]["generation"] == 1

    await obj.patch({"status": {"observedGeneration": 1}}, subresource="status")
    assert obj.raw["metadata"]["generation"] == 1
    await obj.patch({"spec": {"interval": "10m"}})
    assert obj.raw["metadata"]["generation"] == 2
    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"spec": {"generator": {"type": "nope"}}})
    assert "spec.generator.type" in causes(err)


def artifact_status(**changes: Any) -> dict[str, Any]:
    artifact = {
        "digest": "sha256:" + "a" * 64,
        "lastUpdateTime": "2026-01-01T00:00:00Z",
        "path": "externalsource/default/src/a.tar.gz",
        "revision": "sha256:" + "a" * 64,
        "url": "http://artifacts.example/a.tar.gz",
        **changes,
    }
    return {"status": {"artifact": {k: v for k, v in artifact.items() if v is not None}}}


async def test_flux_external_artifact_schema(k8s: Emulator, kube_api: Api) -> None:
    obj = ExternalArtifact(
        {
            "metadata": {"name": "src", "namespace": "default"},
            "spec": {"sourceRef": {"kind": "ExternalSource", "name": "src"}},
        },
        api=kube_api,
    )
    await obj.create()

    await obj.patch(artifact_status(), subresource="status")

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch(artifact_status(digest="sha256 abc"), subresource="status")
    assert causes(err) == {"status.artifact.digest": "FieldValueInvalid"}

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch(
            {"status": {"artifact": {"url": None, "lastUpdateTime": None}}}, subresource="status"
        )
    assert causes(err) == {
        "status.artifact.lastUpdateTime": "FieldValueRequired",
        "status.artifact.url": "FieldValueRequired",
    }

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"spec": {"sourceRef": {"name": None}}})
    assert causes(err) == {"spec.sourceRef.name": "FieldValueRequired"}
