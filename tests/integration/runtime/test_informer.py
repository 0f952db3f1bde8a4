"""The informer against a fake API server over a real socket: list, watch, 410, backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from controller.resources import EXTERNAL_SOURCES
from controller.runtime.informer import Informer, WatchTimings
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import KubeApis, connect
from tests.integration.runtime.fakeapi import FakeApi, kubeconfig

PLURAL = "externalsources"
FAST = WatchTimings(
    backoff_initial=0.05,
    backoff_cap=0.4,
    min_healthy_watch=0.3,
    inactivity_timeout=5.0,
    page_size=2,
)


def source(name: str, ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"interval": "1m"},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"]))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"]))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", obj["metadata"]["name"]))


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(
    fake: FakeApi, timings: WatchTimings = FAST, api: Any = None
) -> AsyncIterator[tuple[Informer, Recorder]]:
    own_api = api is None
    if api is None:
        api = await connect(qps=None, burst=None, kubeconfig=kubeconfig(fake.url))
    informer = Informer(api=api, resource=EXTERNAL_SOURCES, timings=timings)
    recorder = Recorder()
    informer.add_handler(recorder)
    task = asyncio.create_task(informer.run())
    try:
        async with asyncio.timeout(5):
            await informer.wait_synced()
        yield informer, recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if own_api:
            await api._session.aclose()


async def test_paginated_list_fills_the_cache_and_the_watch_starts_at_the_list_version(
    fake_api: FakeApi,
) -> None:
    for i in range(5):
        fake_api.create(PLURAL, source(f"s{i}"))
    async with running(fake_api) as (informer, recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        assert fake_api.count("list") == 3  # pages of 2
        assert sorted(o["metadata"]["name"] for o in informer.list()) == [f"s{i}" for i in range(5)]
        assert informer.get(ObjectKey("default", "s3")) is not None
        assert fake_api.last_params("watch")["resourceVersion"] == "5"
        assert fake_api.last_params("watch")["allowWatchBookmarks"] == "true"
        assert 300 <= int(fake_api.last_params("watch")["timeoutSeconds"]) <= 600
        assert recorder.events == [("add", f"s{i}") for i in range(5)]


async def test_watch_events_update_the_cache_and_call_handlers(fake_api: FakeApi) -> None:
    async with running(fake_api) as (informer, recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.create(PLURAL, source("a"))
        fake_api.patch(PLURAL, "default", "a", {"spec": {"interval": "2m"}})
        fake_api.create(PLURAL, source("b"))
        fake_api.delete(PLURAL, "default", "b")
        await eventually(lambda: len(recorder.events) == 4)
        assert recorder.events == [("add", "a"), ("update", "a"), ("add", "b"), ("delete", "b")]
        assert informer.get(("default", "a"))["spec"]["interval"] == "2m"  # type: ignore[index]
        assert informer.get(("default", "b")) is None
        assert fake_api.count("watch") == 1


async def test_gone_relists_exactly_once_and_watching_resumes(fake_api: FakeApi) -> None:
    fake_api.create(PLURAL, source("a"))
    async with running(fake_api) as (informer, _recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.compact()
        fake_api.watch_scripts.append("gone")
        fake_api.close_watches()
        await eventually(lambda: fake_api.count("watch") == 3)
        await asyncio.sleep(0.5)
        assert fake_api.count("list") == 2  # the initial list and one relist: not a loop
        assert fake_api.count("watch") == 3
        fake_api.create(PLURAL, source("b"))
        await eventually(lambda: informer.get(("default", "b")) is not None)


async def test_a_server_that_always_answers_gone_is_backed_off(fake_api: FakeApi) -> None:
    async with running(fake_api) as (_informer, _recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.watch_scripts.extend(["gone"] * 1000)
        fake_api.close_watches()
        await asyncio.sleep(2.0)
        relists = fake_api.count("list") - 1
        # backoff 0.05 s doubling to 0.4 s (jitter up to 2x): a handful, not hundreds
        assert 3 <= relists <= 20


async def test_a_closed_stream_resumes_from_the_last_resource_version(fake_api: FakeApi) -> None:
    async with running(fake_api) as (_informer, recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.create(PLURAL, source("a"))
        fake_api.patch(PLURAL, "default", "a", {"spec": {"x": 1}})
        await eventually(lambda: len(recorder.events) == 2)
        last_rv = str(fake_api.rv)
        fake_api.close_watches()
        await eventually(lambda: fake_api.count("watch") == 2)
        assert fake_api.last_params("watch")["resourceVersion"] == last_rv
        assert fake_api.count("list") == 1
        assert recorder.events == [("add", "a"), ("update", "a")]  # nothing replayed twice


async def test_streams_closed_immediately_are_backed_off(fake_api: FakeApi) -> None:
    async with running(fake_api) as (_informer, _recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.watch_scripts.extend(["close"] * 1000)
        fake_api.close_watches()
        await asyncio.sleep(2.0)
        assert 3 <= fake_api.count("watch") <= 20
        assert fake_api.count("list") == 1


async def test_server_errors_are_backed_off(fake_api: FakeApi) -> None:
    async with running(fake_api) as (informer, _recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.faults["watch"] = [500] * 1000
        fake_api.close_watches()
        await asyncio.sleep(2.0)
        assert 3 <= fake_api.count("watch") <= 20
        fake_api.faults["watch"].clear()
        fake_api.create(PLURAL, source("back"))
        await eventually(lambda: informer.get(("default", "back")) is not None, timeout=3)


async def test_a_silent_watch_hits_the_inactivity_timeout_and_resumes(fake_api: FakeApi) -> None:
    timings = WatchTimings(
        backoff_initial=0.05, backoff_cap=0.4, min_healthy_watch=0.1, inactivity_timeout=0.5
    )
    async with running(fake_api, timings) as (_informer, _recorder):
        await asyncio.sleep(1.8)
        assert 3 <= fake_api.count("watch") <= 5
        assert fake_api.count("list") == 1


async def test_failed_list_is_retried_with_backoff_before_sync(fake_api: FakeApi) -> None:
    fake_api.faults["list"] = [503, 503, 503]
    fake_api.create(PLURAL, source("a"))
    async with running(fake_api) as (informer, _recorder):
        assert fake_api.count("list") == 4
        assert informer.has_synced
        times = [t for t, kind, _, _ in fake_api.requests if kind == "list"]
        assert times[-1] - times[0] >= 0.05 + 0.1 + 0.2


async def test_bookmarks_advance_the_resource_version(fake_api: FakeApi) -> None:
    async with running(fake_api) as (informer, recorder):
        await eventually(lambda: fake_api.count("watch") == 1)
        fake_api.bookmark()
        await eventually(lambda: informer.resource_version == str(fake_api.rv))
        fake_api.close_watches()
        await eventually(lambda: fake_api.count("watch") == 2)
        assert fake_api.last_params("watch")["resourceVersion"] == str(fake_api.rv)
        assert recorder.events == []


async def test_unauthorized_on_the_main_api_does_not_break_the_watch(fake_api: FakeApi) -> None:
    fake_api.create(PLURAL, source("a"))
    apis = await KubeApis.connect(
        qps=100, burst=100, environ={}, kubeconfig=kubeconfig(fake_api.url)
    )
    try:
        async with running(fake_api, api=apis.informers) as (informer, _recorder):
            await eventually(lambda: fake_api.count("watch") == 1)
            fake_api.faults["get"] = [401]
            async with apis.main.call_api(
                "GET", version=EXTERNAL_SOURCES.version, namespace="default", url=f"{PLURAL}/a"
            ) as response:
                assert response.status_code == 200  # kr8s re-authenticated and retried
            assert fake_api.count("get") == 2
            fake_api.create(PLURAL, source("b"))
            await eventually(lambda: informer.get(("default", "b")) is not None)
            assert fake_api.count("watch") == 1  # the stream survived the session rebuild
    finally:
        await apis.aclose()
