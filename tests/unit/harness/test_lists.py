"""LIST: the list's resourceVersion, pagination, label and field selectors."""

from __future__ import annotations

from typing import Any

import kr8s
import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator
from tests.unit.harness.clients import Widget, make_widget


async def list_widgets(api: Api, **params: str) -> dict[str, Any]:
    async with api.call_api(
        "GET", version="example.com/v1", namespace="default", url="widgets", params=params
    ) as response:
        body: dict[str, Any] = response.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in body["items"]]


async def test_list_carries_the_current_resource_version(widgets: Emulator, kube_api: Api) -> None:
    empty = await list_widgets(kube_api)
    assert empty["kind"] == "WidgetList"
    assert empty["items"] == []

    obj = await make_widget(kube_api, "a")
    body = await list_widgets(kube_api)

    assert int(body["metadata"]["resourceVersion"]) == int(obj.raw["metadata"]["resourceVersion"])
    assert int(body["metadata"]["resourceVersion"]) > int(empty["metadata"]["resourceVersion"])


async def test_pagination_with_limit_and_continue(widgets: Emulator, kube_api: Api) -> None:
    for name in ("e", "a", "d", "b", "c"):
        await make_widget(kube_api, name)

    first = await list_widgets(kube_api, limit="2")
    second = await list_widgets(kube_api, limit="2", **{"continue": first["metadata"]["continue"]})
    third = await list_widgets(kube_api, limit="2", **{"continue": second["metadata"]["continue"]})

    assert [names(first), names(second), names(third)] == [["a", "b"], ["c", "d"], ["e"]]
    assert first["metadata"]["remainingItemCount"] == 3
    assert "continue" not in third["metadata"]
    assert {p["metadata"]["resourceVersion"] for p in (first, second, third)} == {
        first["metadata"]["resourceVersion"]
    }
    listed = [w.name async for w in Widget.list(api=kube_api, namespace="default")]
    assert listed == ["a", "b", "c", "d", "e"]


async def test_compaction_expires_continue_tokens(widgets: Emulator, kube_api: Api) -> None:
    for name in ("a", "b", "c"):
        await make_widget(kube_api, name)
    first = await list_widgets(kube_api, limit="1")
    await make_widget(kube_api, "d")
    widgets.compact()

    with pytest.raises(kr8s.ServerError) as err:
        await list_widgets(kube_api, limit="1", **{"continue": first["metadata"]["continue"]})
    assert err.value.status["code"] == 410


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier=front", ["a"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front, back)", ["a", "b", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("app=web,!tier", []),
    ],
)
async def test_label_selectors(
    widgets: Emulator, kube_api: Api, selector: str, expected: list[str]
) -> None:
    await make_widget(kube_api, "a", labels={"app": "web", "tier": "front"})
    await make_widget(kube_api, "b", labels={"app": "web", "tier": "back"})
    await make_widget(kube_api, "c", labels={"app": "db", "tier": "back"})
    await make_widget(kube_api, "d", labels={})

    assert names(await list_widgets(kube_api, labelSelector=selector)) == expected


async def test_field_selectors_and_namespaces(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")
    await make_widget(kube_api, "b")
    other = Widget(
        {"metadata": {"name": "a", "namespace": "other"}, "spec": {"color": "red"}}, api=kube_api
    )
    await other.create()

    assert names(await list_widgets(kube_api, fieldSelector="metadata.name=b")) == ["b"]
    assert names(await list_widgets(kube_api, fieldSelector="metadata.name!=b")) == ["a"]
    async with kube_api.call_api("GET", version="example.com/v1", url="widgets") as response:
        everywhere = response.json()
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("default", "a"),
        ("default", "b"),
        ("other", "a"),
    ]
    found = await Widget.get("b", api=kube_api, namespace="default")
    assert found.name == "b"

    with pytest.raises(kr8s.ServerError) as err:
        await list_widgets(kube_api, fieldSelector="spec.color=red")
    assert err.value.status["code"] == 400
