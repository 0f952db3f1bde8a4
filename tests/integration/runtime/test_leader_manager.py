"""Leader election and the Manager against the API emulator (real sockets, short leases)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from controller.runtime.informer import WatchTimings
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import KubeApis, connect
from controller.runtime.leader import LEASE_PREFIX, LeaderElector, lease_name
from controller.runtime.manager import Manager, Wiring
from controller.runtime.settings import ControllerSettings
from controller.runtime.worker import Result
from tests.harness import Emulator, kubeconfig

LEASES = "leases"
FAST = WatchTimings(backoff_initial=0.05, backoff_cap=0.4, min_healthy_watch=0.3)


def settings(**overrides: Any) -> ControllerSettings:
    values: dict[str, Any] = {
        "health_addr": "127.0.0.1:0",
        "metrics_addr": "127.0.0.1:0",
        "enable_leader_election": True,
        "leader_election_lease_duration": 5.0,
        "leader_election_renew_deadline": 1.0,
        "leader_election_retry_period": 0.2,
        "leader_election_namespace": "ctl",
        "graceful_shutdown_timeout": 2.0,
        "concurrent": 2,
    }
    values.update(overrides)
    return ControllerSettings(**values)


def source(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"interval": "1m", "generator": {"type": "http", "http": {"url": "http://x/"}}},
    }


def lease(k8s: Emulator) -> dict[str, Any]:
    obj = k8s.get_object(LEASES, "ctl", LEASE_PREFIX)
    assert obj is not None, "no lease"
    spec: dict[str, Any] = obj["spec"]
    return spec


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class Running:
    def __init__(self, manager: Manager, task: asyncio.Task[None], apis: KubeApis) -> None:
        self.manager, self.task, self.apis = manager, task, apis


@contextlib.asynccontextmanager
async def managers(
    k8s: Emulator, reconciles: list[Callable[[ObjectKey], Any]], **overrides: Any
) -> AsyncIterator[list[Running]]:
    running: list[Running] = []
    try:
        for i, reconcile in enumerate(reconciles):
            apis = await KubeApis.connect(
                qps=1000, burst=1000, environ={}, kubeconfig=kubeconfig(str(k8s.url))
            )
            manager = Manager(
                settings=settings(**overrides),
                apis=apis,
                environ={},
                identity=f"m{i}",
                timings=FAST,
            )
            task = asyncio.create_task(manager.run(Wiring(reconcile=reconcile)))
            running.append(Running(manager, task, apis))
            await manager.wait_started()
        yield running
    finally:
        for r in running:
            r.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.task
            await r.apis.aclose()


def recorder(log: list[tuple[str, ObjectKey]], name: str) -> Callable[[ObjectKey], Any]:
    async def reconcile(key: ObjectKey) -> Result:
        log.append((name, key))
        return Result(requeue_after=0.3)

    return reconcile


async def test_exactly_one_of_two_managers_reconciles(k8s: Emulator) -> None:
    for name in ("a", "b", "c"):
        k8s.create_object("externalsources", source(name))
    seen: list[tuple[str, ObjectKey]] = []
    async with managers(k8s, [recorder(seen, "m0"), recorder(seen, "m1")]) as running:
        await eventually(lambda: len(seen) >= 9)
        holder = lease(k8s)["holderIdentity"]
        assert {who for who, _ in seen} == {holder}
        assert {key for _, key in seen} == {ObjectKey("default", n) for n in "abc"}
        leaders = [r.manager.is_leader for r in running]
        assert sorted(leaders) == [False, True]


async def test_stopping_the_leader_releases_the_lease_and_the_other_takes_over_promptly(
    k8s: Emulator,
) -> None:
    k8s.create_object("externalsources", source("a"))
    seen: list[tuple[str, ObjectKey]] = []
    async with managers(k8s, [recorder(seen, "m0"), recorder(seen, "m1")]) as running:
        await eventually(lambda: bool(seen))
        leader = next(r for r in running if r.manager.is_leader)
        follower = next(r for r in running if r is not leader)
        leader.manager.stop()
        async with asyncio.timeout(3):
            await leader.task
        stopped_at = asyncio.get_running_loop().time()
        await eventually(lambda: follower.manager.is_leader, timeout=3)
        # far sooner than the 5 s lease would take to expire
        assert asyncio.get_running_loop().time() - stopped_at < 2.0
        assert lease(k8s)["holderIdentity"] == follower.manager.elector.identity  # type: ignore[union-attr]
        count = len(seen)
        await eventually(lambda: len(seen) > count)
        assert seen[-1][0] == follower.manager.elector.identity  # type: ignore[union-attr]


async def test_release_on_stop_clears_the_holder(k8s: Emulator) -> None:
    seen: list[tuple[str, ObjectKey]] = []
    async with managers(k8s, [recorder(seen, "m0")]) as running:
        await eventually(lambda: running[0].manager.is_leader)
        running[0].manager.stop()
        await running[0].task
        assert lease(k8s)["holderIdentity"] == ""
        assert lease(k8s)["leaseDurationSeconds"] == 1


async def test_a_dead_leader_is_replaced_after_the_lease_expires(k8s: Emulator) -> None:
    apis = [await connect(kubeconfig=kubeconfig(str(k8s.url))) for _ in range(2)]
    try:
        common: dict[str, Any] = {
            "name": LEASE_PREFIX,
            "namespace": "ctl",
            "lease_duration": 2.0,
            "renew_deadline": 1.5,
            "retry_period": 0.1,
        }
        dead = LeaderElector(api=apis[0], identity="dead", **common)
        heir = LeaderElector(api=apis[1], identity="heir", **common)
        await dead.acquire()  # then it "crashes": no renewals, no release
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(5):
            await heir.acquire()
        waited = loop.time() - started
        assert 2.0 <= waited < 3.0
        assert lease(k8s)["holderIdentity"] == "heir"
        assert lease(k8s)["leaseTransitions"] == 1
    finally:
        for api in apis:
            await api.aclose()


async def test_racing_candidates_one_wins(k8s: Emulator) -> None:
    apis = [await connect(kubeconfig=kubeconfig(str(k8s.url))) for _ in range(5)]
    try:
        electors = [
            LeaderElector(
                api=api,
                name=LEASE_PREFIX,
                namespace="ctl",
                identity=f"c{i}",
                lease_duration=5,
                renew_deadline=4,
                retry_period=0.1,
            )
            for i, api in enumerate(apis)
        ]
        tasks = [asyncio.create_task(e.acquire()) for e in electors]
        await asyncio.sleep(1.0)
        done = [t for t in tasks if t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert len(done) == 1
        assert sum(e.is_leader for e in electors) == 1
    finally:
        for api in apis:
            await api.aclose()


def test_lease_name_is_per_selector() -> None:
    assert lease_name("") == "externalsource-controller-leader-election"
    sharded = lease_name("sharding.fluxcd.io/key=shard1")
    assert sharded.startswith("externalsource-controller-leader-election-")
    assert sharded != lease_name("sharding.fluxcd.io/key=shard2")


async def test_losing_the_lease_cancels_in_flight_work_at_once(k8s: Emulator) -> None:
    k8s.create_object("externalsources", source("slow"))
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Result()

    async with managers(k8s, [reconcile]) as running:
        await asyncio.wait_for(started.wait(), 5)
        k8s.inject_error(
            500, verb="patch", resource=LEASES, times=None
        )  # renewals fail from now on
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(cancelled.wait(), 3)
        assert loop.time() - t0 < 1.6  # renew deadline 1 s, then at once
        assert not running[0].manager.is_leader
        k8s.clear_faults()
        await eventually(lambda: running[0].manager.is_leader, timeout=3)


async def test_graceful_stop_lets_in_flight_reconciles_finish(k8s: Emulator) -> None:
    k8s.create_object("externalsources", source("a"))
    started = asyncio.Event()
    finished: list[str] = []

    async def reconcile(key: ObjectKey) -> Result:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(key.name)
        return Result()

    async with managers(k8s, [reconcile], enable_leader_election=False) as running:
        await asyncio.wait_for(started.wait(), 5)
        running[0].manager.stop()
        await asyncio.wait_for(running[0].task, 3)
        assert finished == ["a"]


async def test_graceful_stop_is_bounded(k8s: Emulator) -> None:
    k8s.create_object("externalsources", source("stuck"))
    started = asyncio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        started.set()
        await asyncio.sleep(3600)
        return Result()

    async with managers(k8s, [reconcile], graceful_shutdown_timeout=0.5) as running:
        await asyncio.wait_for(started.wait(), 5)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        running[0].manager.stop()
        await asyncio.wait_for(running[0].task, 3)
        assert 0.5 <= loop.time() - t0 < 1.5
        assert lease(k8s)["holderIdentity"] == ""


async def test_probes_and_metrics_over_http(k8s: Emulator) -> None:
    k8s.inject_error(503, verb="list", times=None)
    seen: list[tuple[str, ObjectKey]] = []
    async with (
        managers(k8s, [recorder(seen, "m0")]) as running,
        aiohttp.ClientSession() as http,
    ):
        manager = running[0].manager
        base = f"http://127.0.0.1:{manager.health_port}"
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{base}/readyz") as r:
            body = await r.json()
            assert r.status == 503
            assert body["checks"]["informer-externalsources"] is False
        k8s.clear_faults()
        k8s.create_object("externalsources", source("a"))
        await eventually(lambda: bool(seen))
        async with http.get(f"{base}/readyz") as r:
            body = await r.json()
            assert r.status == 200
            assert body["leader"] is True
        async with http.get(f"http://127.0.0.1:{manager.metrics_port}/metrics") as r:
            text = await r.text()
        assert 'workqueue_adds_total{controller="externalsource",name="externalsource"}' in text
        assert (
            'controller_runtime_reconcile_total{controller="externalsource",result="requeue_after"}'
            in text
        )
        assert (
            'leader_election_master_status{name="externalsource-controller-leader-election"} 1.0'
            in text
        )


@pytest.mark.parametrize("addr", ["127.0.0.1:notaport", "nohostport"])
async def test_a_bad_server_address_fails_the_run(k8s: Emulator, addr: str) -> None:
    apis = await KubeApis.connect(qps=10, burst=10, environ={}, kubeconfig=kubeconfig(str(k8s.url)))
    try:
        manager = Manager(settings=settings(health_addr=addr), apis=apis, environ={}, timings=FAST)
        with pytest.raises(ValueError, match="is not host:port"):
            await manager.run(Wiring(reconcile=recorder([], "x")))
    finally:
        await apis.aclose()
