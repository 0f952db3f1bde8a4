"""WATCH: from a resourceVersion, selectors, bookmarks, timeoutSeconds, 410 Gone, closing."""

from __future__ import annotations

import asyncio

import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator
from tests.unit.harness.clients import Widget, make_widget, read_watch, summary

pytestmark = pytest.mark.looptime


async def until_watching(emulator: Emulator, streams: int = 1) -> None:
    async with asyncio.timeout(5):
        while emulator.hub.open_streams < streams:
            await asyncio.sleep(0.001)


async def test_fresh_watch_lists_then_follows(widgets: Emulator, kube_api: Api) -> None:
    a = await make_widget(kube_api, "a")
    watch = asyncio.create_task(read_watch(kube_api, {}, count=4))
    await until_watching(widgets)

    await make_widget(kube_api, "b")
    await a.patch({"spec": {"size": 2}})
    await a.delete()

    events = await watch
    assert summary(events) == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "a")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events[1:]]
    assert rvs == sorted(rvs)
    assert rvs[-1] == widgets.resource_version


async def test_watch_from_a_resource_version_sends_only_later_events(
    widgets: Emulator, kube_api: Api
) -> None:
    a = await make_widget(kube_api, "a")
    since = a.raw["metadata"]["resourceVersion"]
    await a.patch({"spec": {"size": 2}})
    await make_widget(kube_api, "b")

    events = await read_watch(kube_api, {"resourceVersion": since, "timeoutSeconds": "1"})

    assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b")]


async def test_selector_transitions_become_added_and_deleted(
    widgets: Emulator, kube_api: Api
) -> None:
    a = await make_widget(kube_api, "a", labels={"app": "db"})
    since = a.raw["metadata"]["resourceVersion"]
    await make_widget(kube_api, "b", labels={"app": "db"})
    await a.patch({"metadata": {"labels": {"app": "web"}}})
    await a.patch({"spec": {"size": 3}})
    await a.patch({"metadata": {"labels": {"app": "db"}}})

    events = await read_watch(
        kube_api, {"resourceVersion": since, "labelSelector": "app=web", "timeoutSeconds": "1"}
    )

    assert summary(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_field_selector_on_watch(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")
    await make_widget(kube_api, "b")

    events = await read_watch(kube_api, {"fieldSelector": "metadata.name=b", "timeoutSeconds": "1"})

    assert summary(events) == [("ADDED", "b")]


async def test_timeout_seconds_ends_the_stream(widgets: Emulator, kube_api: Api) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()

    events = await read_watch(kube_api, {"resourceVersion": "0", "timeoutSeconds": "300"})

    assert events == []
    assert loop.time() - start == pytest.approx(300, abs=1)


async def test_periodic_bookmarks_carry_the_current_resource_version(
    widgets: Emulator, kube_api: Api
) -> None:
    obj = await make_widget(kube_api, "a")
    rv = obj.raw["metadata"]["resourceVersion"]
    loop = asyncio.get_running_loop()
    start = loop.time()

    events = await read_watch(
        kube_api, {"resourceVersion": rv, "allowWatchBookmarks": "true"}, count=2
    )

    assert summary(events) == [("BOOKMARK", rv), ("BOOKMARK", rv)]
    assert events[0]["object"]["kind"] == "Widget"
    assert loop.time() - start == pytest.approx(120, abs=1)


async def test_bookmark_on_demand_and_only_when_allowed(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    rv = obj.raw["metadata"]["resourceVersion"]
    with_bookmarks = asyncio.create_task(
        read_watch(kube_api, {"resourceVersion": rv, "allowWatchBookmarks": "true"}, count=1)
    )
    without = asyncio.create_task(read_watch(kube_api, {"resourceVersion": rv}))
    await until_watching(widgets, 2)

    widgets.bookmark()
    assert summary(await with_bookmarks) == [("BOOKMARK", rv)]
    widgets.close_watches()
    assert await without == []


async def test_compacted_resource_version_gets_410(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    old = obj.raw["metadata"]["resourceVersion"]
    await obj.patch({"spec": {"size": 2}})
    widgets.compact()

    events = await read_watch(kube_api, {"resourceVersion": old})

    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [
        ("ERROR", 410, "Expired")
    ]
    current = obj.raw["metadata"]["resourceVersion"]
    assert await read_watch(kube_api, {"resourceVersion": current, "timeoutSeconds": "1"}) == []


async def test_open_watches_can_be_failed_with_410(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    watch = asyncio.create_task(
        read_watch(kube_api, {"resourceVersion": obj.raw["metadata"]["resourceVersion"]})
    )
    await until_watching(widgets)

    assert widgets.close_watches(gone=True) == 1

    events = await watch
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]
    assert widgets.hub.open_streams == 0


async def test_kr8s_watch_works(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")
    seen = []
    async for event, obj in kube_api.async_watch(Widget, namespace="default"):
        seen.append((event, obj.name, obj.metadata.resourceVersion))
        break
    assert seen == [("ADDED", "a", "1")]


async def test_stream_ends_when_the_client_goes_away(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")

    events = await read_watch(kube_api, {}, count=1)  # the client hangs up after one event
    assert summary(events) == [("ADDED", "a")]

    async with asyncio.timeout(5):
        while widgets.hub.open_streams:
            await asyncio.sleep(0.1)
