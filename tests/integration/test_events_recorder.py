"""The event recorder against the Kubernetes API emulator: what reaches Kubernetes (and
Flux's notification-controller), what is aggregated, filtered or dropped, and that a
caller never waits for either of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from controller.event_correlator import MAX_EVENT_NAME
from controller.events import EventLimits, EventRecorder
from controller.runtime.client import KubeClient
from controller.runtime.kube import connect
from tests.harness import Emulator, kubeconfig

NS = "apps"
FAST = EventLimits(retry_delay=0.01, request_timeout=5.0)


def source(name: str = "flags", uid: str = "uid-flags") -> dict[str, Any]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "resourceVersion": "7"},
    }


def events(k8s: Emulator, reason: str | None = None) -> list[dict[str, Any]]:
    found = k8s.list_objects("v1/events", NS)
    return [e for e in found if reason is None or e["reason"] == reason]


def counted(sink: str, outcome: str) -> float:
    labels = {"sink": sink, "outcome": outcome}
    return REGISTRY.get_sample_value("externalsource_events_total", labels) or 0.0


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.01)
        return result


@pytest_asyncio.fixture
async def kube(k8s: Emulator) -> AsyncIterator[KubeClient]:
    client = await connect(kubeconfig=kubeconfig(str(k8s.url)))
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def hanging_server() -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP endpoint that accepts connections and never answers (a wedged server)."""
    connections: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_event_reaches_kubernetes_with_its_revision(
    k8s: Emulator, kube: KubeClient
) -> None:
    async with EventRecorder(kube, instance="pod-1", limits=FAST) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored rev", revision="sha256:abc")
        [event] = await eventually(lambda: events(k8s))
    assert event["type"] == "Normal"
    assert (event["reason"], event["message"], event["count"]) == ("NewArtifact", "stored rev", 1)
    assert event["involvedObject"]["kind"] == "ExternalSource"
    assert event["involvedObject"]["name"] == "flags"
    assert event["involvedObject"]["uid"] == "uid-flags"
    assert event["metadata"]["annotations"] == {"source.flux.oddkin.co/revision": "sha256:abc"}
    assert event["metadata"]["name"].startswith("flags.")
    assert event["reportingComponent"] == "externalsource-controller"
    assert event["reportingInstance"] == "pod-1"


async def test_repeats_are_one_event_with_a_count(k8s: Emulator, kube: KubeClient) -> None:
    async with EventRecorder(kube, limits=FAST) as recorder:
        for _ in range(5):
            recorder.normal(source(), reason="Progressing", message="same words")
    [event] = events(k8s)  # leaving the recorder sent everything queued
    assert event["count"] == 5
    assert event["firstTimestamp"] <= event["lastTimestamp"]
    assert len(k8s.requests_of("create", "events")) == 1
    assert len(k8s.requests_of("patch", "events")) == 4


async def test_an_expired_event_is_created_again_with_the_count(
    k8s: Emulator, kube: KubeClient
) -> None:
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.normal(source(), reason="Progressing", message="same words")
        [event] = await eventually(lambda: events(k8s))
        k8s.delete_object("v1/events", NS, event["metadata"]["name"])  # the API server's TTL
        recorder.normal(source(), reason="Progressing", message="same words")
        [again] = await eventually(lambda: events(k8s))
    assert again["metadata"]["name"] == event["metadata"]["name"]
    assert again["count"] == 2


async def test_a_long_source_name_gives_an_event_name_of_at_most_253(
    k8s: Emulator, kube: KubeClient
) -> None:
    long_name = "a" * 120 + "." + "b" * 132  # 253 characters, the longest a source can have
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.normal(source(long_name), reason="NewArtifact", message="stored")
    [event] = events(k8s)
    assert len(event["metadata"]["name"]) <= MAX_EVENT_NAME
    assert event["involvedObject"]["name"] == long_name


async def test_the_spam_filter_bounds_the_writes_about_one_object(
    k8s: Emulator, kube: KubeClient
) -> None:
    filtered = counted("kubernetes", "rate_limited")
    async with EventRecorder(kube, limits=FAST) as recorder:
        for i in range(40):
            recorder.normal(source(), reason="NewArtifact", message=f"stored revision {i}")
        recorder.normal(source("other", "uid-other"), reason="NewArtifact", message="stored")
    assert len([e for e in events(k8s) if e["involvedObject"]["name"] == "flags"]) == 25
    assert len([e for e in events(k8s) if e["involvedObject"]["name"] == "other"]) == 1
    assert counted("kubernetes", "rate_limited") - filtered == 15


@pytest.mark.looptime
async def test_the_spam_filter_gives_one_write_back_every_five_minutes(
    k8s: Emulator, kube: KubeClient
) -> None:
    async with EventRecorder(kube) as recorder:
        for i in range(30):
            recorder.normal(source(), reason="NewArtifact", message=f"stored revision {i}")
        await eventually(lambda: len(events(k8s)) == 25)
        await asyncio.sleep(299)
        recorder.normal(source(), reason="NewArtifact", message="stored revision 30")
        await asyncio.sleep(2)
        recorder.normal(source(), reason="NewArtifact", message="stored revision 31")
        await eventually(lambda: len(events(k8s)) == 26)
        await asyncio.sleep(600)
        for i in range(32, 40):
            recorder.normal(source(), reason="NewArtifact", message=f"stored revision {i}")
    assert len(events(k8s)) == 28


@pytest.mark.looptime
async def test_an_event_waits_while_reconciles_run_and_goes_when_they_end(
    k8s: Emulator, kube: KubeClient, looptime: float
) -> None:
    busy = True
    async with EventRecorder(kube, limits=FAST, busy=lambda: busy) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored artifact")
        await asyncio.sleep(3)
        assert events(k8s) == []  # status writes first
        busy = False
        await eventually(lambda: events(k8s, "NewArtifact"))
        assert 3 <= looptime < 3.5


@pytest.mark.looptime
async def test_an_event_waits_at_most_defer_seconds_for_a_busy_controller(
    k8s: Emulator, kube: KubeClient, looptime: float
) -> None:
    limits = EventLimits(retry_delay=0.01, request_timeout=5.0, defer=4.0)
    async with EventRecorder(kube, limits=limits, busy=lambda: True) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored artifact")
        await eventually(lambda: events(k8s, "NewArtifact"), timeout=10)
        assert 4 <= looptime < 4.5


@pytest.mark.looptime
async def test_transient_errors_are_retried_with_backoff(
    k8s: Emulator, kube: KubeClient, looptime: float
) -> None:
    k8s.inject_error(503, verb="create", resource="events", times=2)
    async with EventRecorder(kube) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored")
        await eventually(lambda: events(k8s), timeout=10)
        assert 3 <= looptime < 4  # waited 1 s, then 2 s
    assert len(k8s.requests_of("create", "events")) == 3


@pytest.mark.looptime
async def test_retry_after_is_honoured(k8s: Emulator, kube: KubeClient, looptime: float) -> None:
    k8s.inject_error(429, verb="create", resource="events", times=1, retry_after=20)
    async with EventRecorder(kube) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored")
        await eventually(lambda: events(k8s), timeout=30)
        assert 20 <= looptime < 21


async def test_a_repeated_failure_is_said_once_until_it_is_resolved(
    k8s: Emulator, kube: KubeClient
) -> None:
    obj = source()
    async with EventRecorder(kube, limits=FAST) as recorder:
        for _ in range(3):  # retries of the same failure
            recorder.warning(obj, reason="FetchFailed", message="HTTP 503")
        recorder.warning(obj, reason="HookFailed", message="exit 1")  # a different failure
        recorder.warning(obj, reason="FetchFailed", message="HTTP 503")  # back to the first
        recorder.normal(obj, reason="Progressing", message="still trying")  # does not reset
        recorder.warning(obj, reason="FetchFailed", message="HTTP 503")
        recorder.resolved(obj)  # a reconcile succeeded
        recorder.warning(obj, reason="FetchFailed", message="HTTP 503")  # the failure is back
    [fetch] = events(k8s, "FetchFailed")
    [hook] = events(k8s, "HookFailed")
    assert fetch["type"] == hook["type"] == "Warning"
    assert fetch["count"] == 2  # once per failure episode, aggregated into one Event
    assert hook["count"] == 1


async def test_a_standing_warning_survives_new_artifacts_and_recovery(
    k8s: Emulator, kube: KubeClient
) -> None:
    obj = source()
    insecure = {"reason": "InsecureSkipVerify", "message": "TLS verification is disabled"}
    async with EventRecorder(kube, limits=FAST) as recorder:
        for revision in ("r1", "r2", "r3"):  # three successful reconciles, each a new artifact
            recorder.resolved(obj)
            recorder.normal(obj, reason="NewArtifact", message=f"stored {revision}")
            recorder.standing_warning(obj, **insecure, active=True)
        recorder.standing_warning(obj, **insecure, active=False)  # the user turned it off
        recorder.standing_warning(obj, **insecure, active=True)  # ... and on again
    [warning] = events(k8s, "InsecureSkipVerify")
    assert warning["count"] == 2
    assert len(events(k8s, "NewArtifact")) == 3


async def test_a_warning_dropped_for_a_full_queue_is_said_on_the_next_retry(
    k8s: Emulator, kube: KubeClient
) -> None:
    recorder = EventRecorder(kube, limits=EventLimits(queue_size=1))
    recorder.warning(source(), reason="FetchFailed", message="HTTP 503")  # queued
    recorder.warning(source(), reason="HookFailed", message="exit 1")  # dropped: queue full
    async with recorder:  # the sender starts and sends what was queued
        await eventually(lambda: events(k8s))
        recorder.warning(source(), reason="HookFailed", message="exit 1")  # the retry fails again
    assert sorted(e["reason"] for e in events(k8s)) == ["FetchFailed", "HookFailed"]


async def test_forget_lets_a_recreated_source_be_warned_again(
    k8s: Emulator, kube: KubeClient
) -> None:
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.warning(source(), reason="FetchFailed", message="HTTP 503")
        recorder.forget(source())  # deleted
        recreated = source(uid="uid-2")
        recorder.warning(recreated, reason="FetchFailed", message="HTTP 503")
    uids = sorted(e["involvedObject"]["uid"] for e in events(k8s, "FetchFailed"))
    assert uids == ["uid-2", "uid-flags"]


async def test_recording_returns_at_once_while_the_api_server_hangs() -> None:
    async with hanging_server() as (url, connections):
        kube = await connect(kubeconfig=kubeconfig(url))
        limits = EventLimits(queue_size=10, request_timeout=60.0)
        full, abandoned = counted("kubernetes", "queue_full"), counted("kubernetes", "abandoned")
        try:
            recorder = EventRecorder(kube, limits=limits)
            async with recorder:
                for i in range(100):
                    recorder.normal(source(), reason="NewArtifact", message=f"stored {i}")
                await eventually(lambda: connections)
                async with asyncio.timeout(5):  # the deadline bounds the drain
                    await recorder.aclose(timeout=0.2)
        finally:
            await kube.aclose()
    assert len(connections) == 1  # the first write is still waiting for an answer
    assert counted("kubernetes", "queue_full") - full >= 89
    assert counted("kubernetes", "abandoned") - abandoned == 10  # 9 queued, 1 in flight


async def test_a_failing_api_server_costs_a_few_retries_and_no_error(
    k8s: Emulator, kube: KubeClient
) -> None:
    failed = counted("kubernetes", "failed")
    k8s.inject_error(503, verb="create", resource="events", times=None)
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.warning(source(), reason="FetchFailed", message="HTTP 503")
        recorder.normal(source(), reason="NewArtifact", message="stored")
    assert counted("kubernetes", "failed") - failed == 2
    assert len(k8s.requests_of("create", "events")) == 2 * FAST.tries
    k8s.clear_faults()
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored")
    assert len(events(k8s)) == 1


async def test_a_forbidden_event_is_not_retried(k8s: Emulator, kube: KubeClient) -> None:
    k8s.inject_error(422, verb="create", resource="events", times=None)
    async with EventRecorder(kube, limits=FAST) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored")
    assert len(k8s.requests_of("create", "events")) == 1


async def test_flux_notifications_are_posted_with_severity_and_revision(
    k8s: Emulator,
    kube: KubeClient,
    notification_receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = notification_receiver
    async with EventRecorder(kube, events_addr=url, limits=FAST) as recorder:
        recorder.normal(source(), reason="NewArtifact", message="stored", revision="sha256:abc")
        recorder.warning(source(), reason="FetchFailed", message="HTTP 503")
    info, error = received
    assert (info["severity"], info["reason"], info["metadata"]) == (
        "info",
        "NewArtifact",
        {"revision": "sha256:abc"},
    )
    assert (error["severity"], error["reason"], error["message"]) == (
        "error",
        "FetchFailed",
        "HTTP 503",
    )
    assert info["involvedObject"]["name"] == "flags"
    assert len(events(k8s)) == 2


@pytest.mark.parametrize("outage", ["hangs", "refuses"])
async def test_a_broken_notification_controller_holds_up_no_kubernetes_event(
    k8s: Emulator, kube: KubeClient, outage: str
) -> None:
    async with hanging_server() as (hanging_url, _connections):
        url = hanging_url if outage == "hangs" else "http://127.0.0.1:9/"
        recorder = EventRecorder(kube, events_addr=url, limits=FAST)
        async with recorder:
            for i in range(3):
                recorder.normal(source(), reason="NewArtifact", message=f"stored {i}")
            await eventually(lambda: len(events(k8s)) == 3)
            async with asyncio.timeout(5):
                await recorder.aclose(timeout=0.2)
