"""Write semantics of the emulator, seen through kr8s as the controller uses it."""

from __future__ import annotations

import json
import uuid

import kr8s
import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator
from tests.unit.harness.clients import Lease, Widget, make_widget, widget


async def test_create_stamps_server_owned_metadata(widgets: Emulator, kube_api: Api) -> None:
    a = await make_widget(kube_api, "a")
    b = await make_widget(kube_api, "b")

    for obj in (a, b):
        meta = obj.raw["metadata"]
        uuid.UUID(meta["uid"])
        assert meta["creationTimestamp"].endswith("Z")
        assert meta["generation"] == 1
    assert int(b.raw["metadata"]["resourceVersion"]) > int(a.raw["metadata"]["resourceVersion"])
    assert a.raw["metadata"]["uid"] != b.raw["metadata"]["uid"]


async def test_every_write_moves_the_resource_version(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    seen = [int(obj.raw["metadata"]["resourceVersion"])]
    await obj.patch({"metadata": {"labels": {"x": "1"}}})
    seen.append(int(obj.raw["metadata"]["resourceVersion"]))
    await obj.patch({"status": {"phase": "Ready"}}, subresource="status")
    seen.append(int(obj.raw["metadata"]["resourceVersion"]))
    await obj.patch({"spec": {"size": 3}})
    seen.append(int(obj.raw["metadata"]["resourceVersion"]))

    assert seen == sorted(set(seen))
    assert widgets.resource_version == seen[-1]


async def test_generation_moves_on_spec_changes_only(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")

    await obj.patch({"status": {"phase": "Ready"}}, subresource="status")
    assert obj.raw["metadata"]["generation"] == 1
    await obj.patch({"metadata": {"labels": {"team": "x"}, "annotations": {"a": "b"}}})
    assert obj.raw["metadata"]["generation"] == 1
    await obj.patch({"spec": {"size": 2}})
    assert obj.raw["metadata"]["generation"] == 2
    await obj.patch([{"op": "replace", "path": "/spec/color", "value": "blue"}], type="json")
    assert obj.raw["metadata"]["generation"] == 3


async def test_a_write_that_changes_nothing_is_not_a_write(
    widgets: Emulator, kube_api: Api
) -> None:
    obj = await make_widget(kube_api, "a", size=2)
    rv = obj.raw["metadata"]["resourceVersion"]

    await obj.patch({"spec": {"size": 2}})

    assert obj.raw["metadata"]["resourceVersion"] == rv
    assert widgets.resource_version == int(rv)


async def test_main_resource_ignores_status(widgets: Emulator, kube_api: Api) -> None:
    body = widget("a")
    body["status"] = {"phase": "Forged"}
    obj = Widget(body, api=kube_api)
    await obj.create()
    assert "status" not in obj.raw

    await obj.patch({"spec": {"size": 5}, "status": {"phase": "Forged"}})

    stored = widgets.get_object("widgets", "default", "a")
    assert stored is not None
    assert stored["spec"]["size"] == 5
    assert "status" not in stored


async def test_status_subresource_changes_only_status(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    before = obj.raw["metadata"]["resourceVersion"]

    await obj.patch(
        {"spec": {"size": 9}, "metadata": {"labels": {"sneaky": "yes"}}, "status": {"phase": "Ok"}},
        subresource="status",
    )

    stored = widgets.get_object("widgets", "default", "a")
    assert stored is not None
    assert stored["status"] == {"phase": "Ok"}
    assert stored["spec"]["size"] == 1
    assert "sneaky" not in stored["metadata"]["labels"]
    assert stored["metadata"]["resourceVersion"] != before
    assert stored["metadata"]["generation"] == 1


async def test_json_patch_on_status(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")

    await obj.patch(
        [{"op": "add", "path": "/status", "value": {"phase": "P"}}],
        type="json",
        subresource="status",
    )

    assert obj.raw["status"] == {"phase": "P"}


async def test_stale_resource_version_in_a_merge_patch_conflicts(
    widgets: Emulator, kube_api: Api
) -> None:
    obj = await make_widget(kube_api, "a")
    stale = obj.raw["metadata"]["resourceVersion"]
    await obj.patch({"spec": {"size": 2}})

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"metadata": {"resourceVersion": stale}, "spec": {"size": 3}})

    assert err.value.response is not None
    assert err.value.response.status_code == 409
    assert err.value.status["reason"] == "Conflict"
    stored = widgets.get_object("widgets", "default", "a")
    assert stored is not None
    assert stored["spec"]["size"] == 2

    current = obj.raw["metadata"]["resourceVersion"]
    await obj.patch({"metadata": {"resourceVersion": current}, "spec": {"size": 3}})
    assert obj.raw["spec"]["size"] == 3


async def test_failed_json_patch_test_op_is_422(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "999"},
        {"op": "replace", "path": "/spec/size", "value": 4},
    ]

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch(ops, type="json")

    assert err.value.response is not None
    assert err.value.response.status_code == 422
    assert widgets.get_object("widgets", "default", "a")["spec"]["size"] == 1  # type: ignore[index]


async def test_put_replaces_with_a_resource_version_precondition(
    k8s: Emulator, kube_api: Api
) -> None:
    lease = Lease(
        {
            "metadata": {"name": "leader", "namespace": "default"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
        api=kube_api,
    )
    await lease.create()
    body = lease.raw.to_dict()
    body["spec"]["holderIdentity"] = "b"

    async with kube_api.call_api(
        "PUT",
        version="coordination.k8s.io/v1",
        namespace="default",
        url="leases/leader",
        content=json.dumps(body),
    ) as response:
        taken = response.json()
    assert taken["spec"]["holderIdentity"] == "b"

    body["spec"]["holderIdentity"] = "c"  # still carries the now stale resourceVersion
    with pytest.raises(kr8s.ServerError) as err:
        async with kube_api.call_api(
            "PUT",
            version="coordination.k8s.io/v1",
            namespace="default",
            url="leases/leader",
            content=json.dumps(body),
        ):
            pass
    assert err.value.response is not None
    assert err.value.response.status_code == 409
    assert k8s.get_object("leases", "default", "leader")["spec"]["holderIdentity"] == "b"  # type: ignore[index]


async def test_delete_waits_for_finalizers(widgets: Emulator, kube_api: Api) -> None:
    body = widget("a")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    obj = Widget(body, api=kube_api)
    await obj.create()

    await obj.delete()
    stored = widgets.get_object("widgets", "default", "a")
    assert stored is not None
    assert "deletionTimestamp" in stored["metadata"]
    assert stored["metadata"]["generation"] == 2

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"metadata": {"finalizers": ["example.com/cleanup", "new"]}})
    assert err.value.response is not None
    assert err.value.response.status_code == 422

    await obj.patch({"metadata": {"finalizers": None}})
    assert widgets.get_object("widgets", "default", "a") is None
    assert not await obj.exists()


async def test_duplicate_create_and_missing_object(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")
    with pytest.raises(kr8s.ServerError) as err:
        await make_widget(kube_api, "a")
    assert err.value.status["reason"] == "AlreadyExists"

    with pytest.raises(kr8s.NotFoundError) as missing:
        await Widget(widget("ghost"), api=kube_api).patch({"spec": {"size": 2}})
    cause = missing.value.__cause__
    assert isinstance(cause, kr8s.ServerError)
    assert cause.status["reason"] == "NotFound"


async def test_generate_name_and_core_events(k8s: Emulator, kube_api: Api) -> None:
    async with kube_api.call_api(
        "POST",
        version="v1",
        namespace="default",
        url="events",
        content=json.dumps(
            {
                "metadata": {"generateName": "src-"},
                "involvedObject": {"kind": "ExternalSource", "name": "src"},
                "reason": "Fetched",
                "message": "ok",
                "type": "Normal",
            }
        ),
    ) as response:
        created = response.json()
    assert response.status_code == 201
    assert created["metadata"]["name"].startswith("src-")
    assert len(created["metadata"]["name"]) == len("src-") + 5
    assert "generation" not in created["metadata"]


async def test_server_side_apply_is_treated_as_merge(widgets: Emulator, kube_api: Api) -> None:
    applied = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {"color": "green"},
    }
    for size in (2, 3):
        applied["spec"]["size"] = size
        async with kube_api.call_api(
            "PATCH",
            version="example.com/v1",
            namespace="default",
            url="widgets/a",
            content=json.dumps(applied),
            headers={"Content-Type": "application/apply-patch+yaml"},
            params={"fieldManager": "test", "force": "true"},
        ) as response:
            assert response.json()["spec"]["size"] == size

    stored = widgets.get_object("widgets", "default", "a")
    assert stored is not None
    assert stored["metadata"]["generation"] == 2


async def test_strategic_merge_patch_is_refused_for_custom_resources(
    widgets: Emulator, kube_api: Api
) -> None:
    await make_widget(kube_api, "a")
    async with kube_api.call_api(
        "PATCH",
        version="example.com/v1",
        namespace="default",
        url="widgets/a",
        content=json.dumps({"spec": {"size": 2}}),
        raise_for_status=False,
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    ) as response:
        assert response.status_code == 415


async def test_direct_edits_act_like_another_client(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")

    edited = widgets.patch_object("widgets", "default", "a", {"spec": {"size": 7}})
    assert edited["metadata"]["generation"] == 2
    widgets.patch_object(
        "widgets",
        "default",
        "a",
        [{"op": "add", "path": "/status", "value": {"phase": "X"}}],
        subresource="status",
    )
    await obj.refresh()
    assert (obj.raw["spec"]["size"], obj.raw["status"]["phase"]) == (7, "X")
    assert widgets.writes() == [widgets.requests[1]]  # only the create went over HTTP

    widgets.delete_object("widgets", "default", "a")
    assert not await obj.exists()
