"""Scripted watches (410, immediate close, silence), withdrawing faults, requests by verb."""

from __future__ import annotations

import asyncio

import kr8s
import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator
from tests.unit.harness.clients import make_widget, read_watch, summary

pytestmark = pytest.mark.looptime

ONE_SECOND = {"timeoutSeconds": "1"}


async def list_status(api: Api) -> int:
    async with api.call_api(
        "GET", version="example.com/v1", namespace="default", url="widgets", raise_for_status=False
    ) as response:
        return response.status_code


async def test_a_gone_script_answers_the_next_watch_with_410_once(
    widgets: Emulator, kube_api: Api
) -> None:
    a = await make_widget(kube_api, "a")
    since = a.raw["metadata"]["resourceVersion"]
    widgets.script_watches("gone")

    first = await read_watch(kube_api, {"resourceVersion": since, **ONE_SECOND})
    second = await read_watch(kube_api, ONE_SECOND)

    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in first] == [
        ("ERROR", 410, "Expired")
    ]
    assert summary(second) == [("ADDED", "a")]


async def test_a_close_script_counts_down_and_only_hits_its_resource(
    widgets: Emulator, kube_api: Api
) -> None:
    await make_widget(kube_api, "a")
    widgets.script_watches("close", resource="widgets.example.com", times=2)

    others = await read_watch(
        kube_api,
        ONE_SECOND,
        url="externalsources",
        version="source.flux.oddkin.co/v1alpha1",
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = [await read_watch(kube_api, ONE_SECOND) for _ in range(2)]
    assert loop.time() - started < 1  # ended at once, not at timeoutSeconds
    normal = await read_watch(kube_api, ONE_SECOND)

    assert others == []
    assert closed == [[], []]
    assert summary(normal) == [("ADDED", "a")]


async def test_a_silent_watch_sends_no_events_nor_bookmarks_until_its_timeout(
    widgets: Emulator, kube_api: Api
) -> None:
    await make_widget(kube_api, "a")
    widgets.bookmark_interval = 1
    widgets.script_watches("silent", times=None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    watch = asyncio.create_task(
        read_watch(kube_api, {"allowWatchBookmarks": "true", "timeoutSeconds": "5"})
    )
    while widgets.hub.open_streams < 1:
        await asyncio.sleep(0.01)

    await make_widget(kube_api, "b")
    widgets.bookmark()

    assert await watch == []
    assert loop.time() - started >= 4.9  # held open until timeoutSeconds


async def test_a_silent_watch_ends_when_the_server_closes_watches(
    widgets: Emulator, kube_api: Api
) -> None:
    widgets.script_watches("silent")
    watch = asyncio.create_task(read_watch(kube_api, {}))
    async with asyncio.timeout(5):
        while widgets.hub.open_streams < 1:
            await asyncio.sleep(0.001)

    assert widgets.close_watches() == 1
    assert await asyncio.wait_for(watch, 5) == []


async def test_clear_faults_withdraws_errors_and_scripts(widgets: Emulator, kube_api: Api) -> None:
    a = await make_widget(kube_api, "a")
    widgets.inject_error(503, verb="list", resource="widgets", times=None)
    widgets.script_watches("close", times=None)
    assert [await list_status(kube_api) for _ in range(3)] == [503, 503, 503]
    assert await read_watch(kube_api, ONE_SECOND) == []

    widgets.clear_faults()

    assert await list_status(kube_api) == 200
    assert summary(await read_watch(kube_api, ONE_SECOND)) == [("ADDED", "a")]
    widgets.inject_error(409, verb="patch", resource="widgets")  # injecting still works after
    with pytest.raises(kr8s.ServerError):
        await a.patch({"spec": {"size": 2}})


def test_an_unknown_script_is_refused(k8s: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown watch script"):
        k8s.script_watches("slow")


async def test_requests_of_counts_by_verb_and_resource(widgets: Emulator, kube_api: Api) -> None:
    widgets.clear_log()
    await make_widget(kube_api, "a")
    await list_status(kube_api)
    await list_status(kube_api)
    await read_watch(kube_api, ONE_SECOND)
    await read_watch(kube_api, ONE_SECOND, url="leases", version="coordination.k8s.io/v1")

    assert len(widgets.requests_of("list", "widgets")) == 2
    assert len(widgets.requests_of("watch")) == 2
    assert [r.resource for r in widgets.requests_of("watch", "leases")] == ["leases"]
    assert [r.verb for r in widgets.requests_of("create")] == ["create"]
    assert widgets.requests_of("delete") == []
