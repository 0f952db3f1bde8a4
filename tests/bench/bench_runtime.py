"""Benchmark: the runtime's own cost — workqueue throughput and informer event rate.

The product needs ≥ 500 reconciles/s end to end; this measures what the runtime
alone takes of that budget, with a reconcile that does nothing:

- workqueue: keys through add → get → reconcile → done via the real workers
  (`run_worker`, metrics included), for 1, 4 and 16 workers;
- informer: a paginated LIST of N ExternalSources into the cache and the queue
  (cold start), then N watch events (creates) streamed into the cache, against
  the tests' fake API server over a loopback socket (the server runs in the
  same process and loop, so its cost is included: the numbers are a floor).

Run: .venv/bin/python -m tests.bench.bench_runtime [--keys 20000] [--objects 10000]
and copy the printed table into docs/benchmarks.md ("## Runtime").
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time

from controller.api.names import EXTERNAL_SOURCES
from controller.runtime.informer import Informer
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import connect
from controller.runtime.ratelimit import default_controller_limiter
from controller.runtime.watches import SourceHandler
from controller.runtime.worker import Result, run_worker
from controller.runtime.workqueue import WorkQueue
from tests.harness import kubeconfig, run_emulator


async def workqueue_rate(keys: int, workers: int) -> float:
    queue: WorkQueue[ObjectKey] = WorkQueue(
        limiter=default_controller_limiter(min_delay=1, max_delay=300), name=f"bench-{workers}"
    )
    remaining = keys
    finished = asyncio.Event()

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            finished.set()
        return Result()

    tasks = [
        asyncio.create_task(run_worker(queue=queue, reconcile=reconcile, controller="bench"))
        for _ in range(workers)
    ]
    started = time.perf_counter()
    for i in range(keys):
        queue.add(ObjectKey("ns", f"s{i}"))
    await finished.wait()
    elapsed = time.perf_counter() - started
    queue.shutdown()
    await asyncio.gather(*tasks)
    return keys / elapsed


async def informer_rates(objects: int) -> tuple[float, float, float]:
    async with run_emulator() as k8s:
        del k8s._requests[:]  # kmock re-filters its request history per request (O(n²))
        for i in range(objects):
            k8s.create_object("externalsources", _source(f"pre{i}"))
        api = await connect(kubeconfig=kubeconfig(str(k8s.url)))
        queue: WorkQueue[ObjectKey] = WorkQueue(
            limiter=default_controller_limiter(min_delay=1, max_delay=300), name="bench-informer"
        )
        informer = Informer(api=api, resource=EXTERNAL_SOURCES)
        informer.add_handler(SourceHandler(queue.add))
        started = time.perf_counter()
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        list_seconds = time.perf_counter() - started
        assert len(queue) == objects
        while not k8s.requests_of("watch"):
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        for i in range(objects):
            k8s.create_object("externalsources", _source(f"new{i}"))
            if i % 200 == 0:
                await asyncio.sleep(0)
        while len(informer.list()) < 2 * objects:
            await asyncio.sleep(0.001)
        watch_rate = objects / (time.perf_counter() - started)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.aclose()
    return list_seconds, objects / list_seconds, watch_rate


def _source(name: str) -> dict[str, object]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"interval": "1m", "generator": {"type": "http", "http": {"url": "http://x"}}},
    }


async def amain(keys: int, objects: int) -> None:
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print("| measurement | result |")
    print("|---|---|")
    for workers in (1, 4, 16):
        rate = await workqueue_rate(keys, workers)
        print(f"| workqueue add→get→reconcile→done, {workers} workers | {rate:,.0f} keys/s |")
    list_s, list_rate, watch_rate = await informer_rates(objects)
    measured = f"{list_s:.2f} s ({list_rate:,.0f} objects/s)"
    print(f"| cold start: LIST {objects:,} sources (pages of 500) → cache + queue | {measured} |")
    print(f"| watch: {objects:,} ADDED events → cache + handlers | {watch_rate:,.0f} events/s |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(amain(args.keys, args.objects))


if __name__ == "__main__":
    main()
