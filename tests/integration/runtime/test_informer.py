"""The informer against the Kubernetes API emulator over a real socket: list, watch, 410, backoff.

Faults are the emulator's own (tests/harness): `script_watches()` for watches
the server answers with 410, closes at once or keeps silent, `inject_error()`
for HTTP errors, `close_watches()` for a server ending every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from controller.api.names import EXTERNAL_SOURCES
from controller.runtime.informer import Informer, WatchTimings
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import KubeApis, connect
from tests.harness import Emulator, kubeconfig

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
        "spec": {"interval": "1m", "generator": {"type": "http", "http": {"url": "http://x/"}}},
    }


def count(k8s: Emulator, verb: str) -> int:
    return len(k8s.requests_of(verb, PLURAL))


def last_params(k8s: Emulator, verb: str) -> dict[str, str]:
    return k8s.requests_of(verb, PLURAL)[-1].params


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
    k8s: Emulator, timings: WatchTimings = FAST, api: Any = None
) -> AsyncIterator[tuple[Informer, Recorder]]:
    own_api = api is None
    if api is None:
        api = await connect(kubeconfig=kubeconfig(str(k8s.url)))
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
            await api.aclose()


async def test_paginated_list_fills_the_cache_and_the_watch_starts_at_the_list_version(
    k8s: Emulator,
) -> None:
    for i in range(5):
        k8s.create_object(PLURAL, source(f"s{i}"))
    async with running(k8s) as (informer, recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        assert count(k8s, "list") == 3  # pages of 2
        assert sorted(o["metadata"]["name"] for o in informer.list()) == [f"s{i}" for i in range(5)]
        assert informer.get(ObjectKey("default", "s3")) is not None
        assert last_params(k8s, "watch")["resourceVersion"] == str(k8s.resource_version)
        assert last_params(k8s, "watch")["allowWatchBookmarks"] == "true"
        assert 300 <= int(last_params(k8s, "watch")["timeoutSeconds"]) <= 600
        assert recorder.events == [("add", f"s{i}") for i in range(5)]


async def test_watch_events_update_the_cache_and_call_handlers(k8s: Emulator) -> None:
    async with running(k8s) as (informer, recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.create_object(PLURAL, source("a"))
        k8s.patch_object(PLURAL, "default", "a", {"spec": {"interval": "2m"}})
        k8s.create_object(PLURAL, source("b"))
        k8s.delete_object(PLURAL, "default", "b")
        await eventually(lambda: len(recorder.events) == 4)
        assert recorder.events == [("add", "a"), ("update", "a"), ("add", "b"), ("delete", "b")]
        assert informer.get(("default", "a"))["spec"]["interval"] == "2m"  # type: ignore[index]
        assert informer.get(("default", "b")) is None
        assert count(k8s, "watch") == 1


async def test_gone_relists_exactly_once_and_watching_resumes(k8s: Emulator) -> None:
    k8s.create_object(PLURAL, source("a"))
    async with running(k8s) as (informer, _recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.script_watches("gone")  # the resumed watch is told its version expired
        k8s.close_watches()
        await eventually(lambda: count(k8s, "watch") == 3)
        await asyncio.sleep(0.5)
        assert count(k8s, "list") == 2  # the initial list and one relist: not a loop
        assert count(k8s, "watch") == 3
        k8s.create_object(PLURAL, source("b"))
        await eventually(lambda: informer.get(("default", "b")) is not None)


async def test_a_server_that_always_answers_gone_is_backed_off(k8s: Emulator) -> None:
    async with running(k8s) as (_informer, _recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.script_watches("gone", times=None)
        k8s.close_watches()
        await asyncio.sleep(2.0)
        relists = count(k8s, "list") - 1
        # backoff 0.05 s doubling to 0.4 s (jitter up to 2x): a handful, not hundreds
        assert 3 <= relists <= 20


async def test_a_closed_stream_resumes_from_the_last_resource_version(k8s: Emulator) -> None:
    async with running(k8s) as (_informer, recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.create_object(PLURAL, source("a"))
        k8s.patch_object(PLURAL, "default", "a", {"spec": {"interval": "2m"}})
        await eventually(lambda: len(recorder.events) == 2)
        last_rv = str(k8s.resource_version)
        k8s.close_watches()
        await eventually(lambda: count(k8s, "watch") == 2)
        assert last_params(k8s, "watch")["resourceVersion"] == last_rv
        assert count(k8s, "list") == 1
        assert recorder.events == [("add", "a"), ("update", "a")]  # nothing replayed twice


async def test_streams_closed_immediately_are_backed_off(k8s: Emulator) -> None:
    async with running(k8s) as (_informer, _recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.script_watches("close", times=None)
        k8s.close_watches()
        await asyncio.sleep(2.0)
        assert 3 <= count(k8s, "watch") <= 20
        assert count(k8s, "list") == 1


async def test_server_errors_are_backed_off(k8s: Emulator) -> None:
    async with running(k8s) as (informer, _recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        k8s.inject_error(500, verb="watch", resource=PLURAL, times=None)
        k8s.close_watches()
        await asyncio.sleep(2.0)
        assert 3 <= count(k8s, "watch") <= 20
        k8s.clear_faults()
        k8s.create_object(PLURAL, source("back"))
        await eventually(lambda: informer.get(("default", "back")) is not None, timeout=3)


async def test_a_silent_watch_hits_the_inactivity_timeout_and_resumes(k8s: Emulator) -> None:
    timings = WatchTimings(
        backoff_initial=0.05, backoff_cap=0.4, min_healthy_watch=0.1, inactivity_timeout=0.5
    )
    k8s.script_watches("silent", times=None)  # no events, no bookmarks, never closed
    async with running(k8s, timings) as (_informer, _recorder):
        await asyncio.sleep(1.8)
        assert 3 <= count(k8s, "watch") <= 5
        assert count(k8s, "list") == 1


async def test_failed_list_is_retried_with_backoff_before_sync(k8s: Emulator) -> None:
    k8s.inject_error(503, verb="list", resource=PLURAL, times=3)
    k8s.create_object(PLURAL, source("a"))
    async with running(k8s) as (informer, _recorder):
        assert count(k8s, "list") == 4
        assert informer.has_synced
        times = [r.time for r in k8s.requests_of("list", PLURAL)]
        assert times[-1] - times[0] >= 0.05 + 0.1 + 0.2


async def test_bookmarks_advance_the_resource_version(k8s: Emulator) -> None:
    async with running(k8s) as (informer, recorder):
        await eventually(lambda: count(k8s, "watch") == 1)
        listed_rv = informer.resource_version
        # writes this watch does not see (another resource) move the server's version on
        k8s.create_object("configmaps", {"metadata": {"name": "other", "namespace": "default"}})
        k8s.bookmark()
        await eventually(lambda: informer.resource_version == str(k8s.resource_version))
        assert informer.resource_version != listed_rv
        k8s.close_watches()
        await eventually(lambda: count(k8s, "watch") == 2)
        assert last_params(k8s, "watch")["resourceVersion"] == str(k8s.resource_version)
        assert recorder.events == []


async def test_unauthorized_on_the_main_api_does_not_break_the_watch(k8s: Emulator) -> None:
    k8s.create_object(PLURAL, source("a"))
    apis = await KubeApis.connect(
        qps=100, burst=100, environ={}, kubeconfig=kubeconfig(str(k8s.url))
    )
    try:
        async with running(k8s, api=apis.sources) as (informer, _recorder):
            await eventually(lambda: count(k8s, "watch") == 1)
            k8s.inject_error(401, verb="get", resource=PLURAL, name="a")
            fetched = await apis.main.get(EXTERNAL_SOURCES, "default", "a")
            assert fetched is not None  # the credentials were re-read and the GET retried
            assert count(k8s, "get") == 2
            k8s.create_object(PLURAL, source("b"))
            await eventually(lambda: informer.get(("default", "b")) is not None)
            assert count(k8s, "watch") == 1  # the stream survived the session rebuild
    finally:
        await apis.aclose()


async def test_the_cache_keeps_what_the_controller_reads_not_managed_fields(
    k8s: Emulator,
) -> None:
    """managedFields and kubectl's last-applied copy are most of an object's bytes; the cache
    (one entry per source, 10,000 of them) drops both, from the list and from watch events."""
    bulky = source("listed")
    bulky["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    bulky["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}",
        "reconcile.fluxcd.io/requestedAt": "now",
    }
    k8s.create_object(PLURAL, bulky)
    async with running(k8s) as (informer, _recorder):
        watched = source("watched")
        watched["metadata"]["managedFields"] = [{"manager": "kubectl"}]
        k8s.create_object(PLURAL, watched)
        await eventually(lambda: informer.get(ObjectKey("default", "watched")) is not None)
        for name in ("listed", "watched"):
            meta = informer.get(ObjectKey("default", name))["metadata"]  # type: ignore[index]
            assert "managedFields" not in meta
            assert "kubectl.kubernetes.io/last-applied-configuration" not in meta.get(
                "annotations", {}
            )
        listed = informer.get(ObjectKey("default", "listed"))["metadata"]  # type: ignore[index]
        assert listed["annotations"] == {"reconcile.fluxcd.io/requestedAt": "now"}


async def test_cached_objects_share_their_keys_and_short_strings(k8s: Emulator) -> None:
    """Two decoded objects each carry their own copy of every key and of values such as
    "default"; the cache keeps one (half of a cached source's memory at 10,000 sources)."""
    k8s.create_object(PLURAL, source("one"))
    async with running(k8s) as (informer, _recorder):
        k8s.create_object(PLURAL, source("two"))  # one from the LIST, one from the watch
        await eventually(lambda: informer.get(ObjectKey("default", "two")) is not None)
        one = informer.get(ObjectKey("default", "one"))
        two = informer.get(ObjectKey("default", "two"))
        assert one is not None
        assert two is not None
        key_one = next(k for k in one["metadata"] if k == "namespace")
        key_two = next(k for k in two["metadata"] if k == "namespace")
        assert key_one is key_two
        assert one["metadata"]["namespace"] is two["metadata"]["namespace"]
        assert one["metadata"]["name"] == "one"
        assert two["metadata"]["name"] == "two"
