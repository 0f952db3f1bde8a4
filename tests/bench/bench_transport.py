"""Benchmark: the Kubernetes transport — kr8s's httpx client against our aiohttp `KubeClient`.

Why: issue 12 keeps kr8s for credentials (kubeconfig, in-cluster config, exec plugins) and
sends the requests of the hot path (the reconciler's GETs and status PATCHes, the informers'
LISTs) through `controller.runtime.client.KubeClient`, an aiohttp session with a pooled
keep-alive connector. This bench measures that choice in isolation: the same requests, to the
same objects on the same real kube-apiserver (etcd + kube-apiserver + kube-controller-manager
of the e2e tier, `tests/e2e/controlplane.py`), authenticated from the same admin kubeconfig,
through each transport, side by side in one run.

- A, "kr8s (httpx)": `kr8s.asyncio.api(kubeconfig=...)` and `Api.call_api(...)` used as
  kr8s's own objects use it (`APIObject.async_get/async_patch`, `Api.async_get_kind`):
  `version=`, `namespace=`, `url=`, the merge patch as `content=json.dumps(patch)` with its
  Content-Type header, `resp.json()`. The patch carries `fieldManager` as ours does, so the
  API server does the same work for both.
- B, "KubeClient (aiohttp)": `controller.runtime.kube.connect(kubeconfig=...)` and the
  client's `get`, `patch(..., subresource="status")` and `list` (what the reconciler and the
  informers call), with everything the door adds (error mapping, metrics, credentials).

Operations, each a block of requests per transport and round:

1. GET of one ExternalSource, sequentially;
2. merge PATCH of its `/status` (`status.lastHandledReconcileAt`, a new value every time, so
   each is a real write with a new resourceVersion);
3. LIST of the namespace's 500 ExternalSources (`limit=500`: one page, as the informer asks);
4. GETs of the 500 objects by 4 coroutines at once (the reconciler's workers);
5. and 6., informative: the LIST again with the same encoding on both sides. httpx asks for
   `gzip, deflate` and kube-apiserver compresses responses over 128 KiB (a 500-object list);
   our door sends no Accept-Encoding. So the LIST is measured also with kr8s asking for
   `identity` (the transports alone), and with the door's request asking for gzip (what
   compression would change for us; not the product's path: `KubeClient._request`).

How, and why this way: one process, both transports, interleaved. CPU per request is the
bench process's `time.process_time()` (user + system, all threads) over a block divided by
its requests; wall per request likewise with `time.perf_counter()`. The machine (2 cores,
shared with kube-apiserver, etcd and possibly another benchmark) is noisy over seconds, so
the blocks alternate A and B, in the order A B in even rounds and B A in odd ones: both
transports meet the same noise and drift, and the ratio httpx/aiohttp is taken within the
run (the table shows it over all rounds, and its smallest and largest value in single
rounds). One process rather than a subprocess per transport keeps the interpreter, the
loop and the measuring identical and lets the rounds alternate every second; the cost is that
the two clients share a heap, so each block starts after `gc.collect()` (one transport's
garbage is not collected on the other's time) and the process does nothing else meanwhile
(one asyncio loop: httpx/anyio and aiohttp do their I/O on it, and connections, the only
thing a resolver thread could serve, are opened outside the timed blocks). Before each
block, 4 concurrent untimed GETs make sure each transport has its keep-alive connections
open: TLS handshakes are not measured (httpx drops idle connections after 5 s, aiohttp
keeps them 60 s; in a quiet controller that difference costs kr8s a handshake now and then,
which this bench does not count). kube-apiserver's own CPU per request (from
`/proc/<pid>/stat`, 10 ms ticks) is shown too: the client's headers can change the server's
work (httpx asks for gzip).

    python -m tests.bench.bench_transport [--requests 3000] [--rounds 6] [--write-docs]
    python -m tests.bench.bench_transport --field-validation [--writes 3000] [--rounds 12]
    python -m tests.bench.bench_transport --results RUN.json --write-docs   # re-render a run

`--requests` is the GETs per transport in the whole run (sequential and concurrent each);
PATCHes are a quarter of it, LISTs 5 per round and variant. Needs the envtest binaries of the
e2e tier in KUBEBUILDER_ASSETS (default ~/.cache/envtest-assets). Results go to
docs/benchmarks.md with `--write-docs` ("Kubernetes transport: kr8s/httpx against aiohttp");
the reading below the table there is written by hand and kept when the section is written
again.

`--field-validation` runs another question on the same control plane instead: does
`fieldValidation=Ignore` on our writes lower kube-apiserver's CPU per write? Without the query
parameter the API server validates as `Warn`: it decodes the body strictly and keeps the
fields its structural schema prunes, to answer unknown and duplicate fields with `Warning`
headers. Both variants go through the door's lower-level `KubeClient._request` (the path the
door's `create`/`patch` take, minus its query building, which fixes `fieldValidation` itself),
with the same query but for that one value: variant "Warn" sends `fieldValidation=Warn`
explicitly (the server's default), variant "Ignore" sends `fieldValidation=Ignore`. Three
writes, sequential, each a block per variant and round, alternating Warn Ignore / Ignore Warn:
a merge PATCH of an ExternalSource's /status (a new `lastHandledReconcileAt` each time), a
merge PATCH of its metadata (a new annotation value each time), and a POST of a new
ExternalSource (the created objects stay until the control plane is torn down: deleting them
between blocks would put the deletions' work on the next block). kube-apiserver's and
etcd's CPU come from `/proc/<pid>/stat` (10 ms ticks, so the blocks are hundreds of writes);
the ratio Ignore/Warn is reported as the median of the single rounds' ratios and their range
(Go's GC makes a single block noisy). `--writes` is the writes per variant and operation in
the whole run. Before the rounds, one status PATCH with an unknown field per variant shows
the difference the parameter makes (Warn: a `Warning` header; Ignore: none), and 3 idle
seconds after the rounds give the servers' background CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import pathlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import kr8s.asyncio

from controller.api.names import (
    API_VERSION,
    EXTERNAL_SOURCES,
    FIELD_MANAGER,
    PLURAL,
)
from controller.runtime.client import MERGE_PATCH, KubeClient
from controller.runtime.kube import connect
from tests.bench.machine import DOCS, describe_machine, replace_section
from tests.e2e.controlplane import (
    ASSETS_VARIABLE,
    ControlPlane,
    missing_assets,
    running_control_plane,
)
from tests.e2e.sources import external_source

NS = "bench-transport"
OBJECTS = 500
TARGET = "s0"  # the object of the GETs and PATCHes
CONCURRENCY = 4
LISTS_PER_ROUND = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_ASSETS = pathlib.Path.home() / ".cache" / "envtest-assets"
TITLE = "Kubernetes transport: kr8s/httpx against aiohttp"
READING = "Reading the numbers"
A, B = "kr8s (httpx)", "KubeClient (aiohttp)"
GZIP = "gzip, deflate"  # what httpx asks for (brotli and zstd are not installed)
OPS = {
    "get": "GET one ExternalSource, sequential",
    "patch": "merge PATCH of its /status, sequential",
    "list": f"LIST {OBJECTS} ExternalSources (one page)",
    "get4": f"GET, {CONCURRENCY} coroutines at once",
    # informative: the LIST with the same encoding on both sides
    "list_identity": "… LIST, both uncompressed (kr8s sends `Accept-Encoding: identity`)",
    "list_gzip": "… LIST, both gzip (not our path: the door's request asking for gzip)",
}

FV_TITLE = "fieldValidation: Warn (the server's default) against Ignore on writes"
FV_READING = "Reading the fieldValidation numbers"
WARN, IGNORE = "Warn", "Ignore"
FV_OPS = {
    "status": "merge PATCH of /status (`lastHandledReconcileAt`)",
    "metadata": "merge PATCH of metadata (one annotation)",
    "create": "POST of a new ExternalSource",
}
FV_ALL = "all three writes"
FV_ANNOTATION = "bench.oddkin.co/value"
IDLE_S = 3.0

JSON = dict[str, Any]


class Transport(Protocol):
    name: str

    async def get(self, name: str) -> JSON: ...

    async def patch_status(self, name: str, status: JSON) -> JSON: ...

    async def list(self, accept_encoding: str | None = None) -> JSON: ...

    async def aclose(self) -> None: ...


class Kr8sTransport:
    """A: kr8s's `Api.call_api`, the way kr8s's own objects call it."""

    name = A

    def __init__(self, api: kr8s.asyncio.Api) -> None:
        self.api = api

    async def get(self, name: str) -> JSON:
        async with self.api.call_api(
            "GET", version=API_VERSION, url=f"{PLURAL}/{name}", namespace=NS
        ) as response:
            body: JSON = response.json()
            return body

    async def patch_status(self, name: str, status: JSON) -> JSON:
        async with self.api.call_api(
            "PATCH",
            version=API_VERSION,
            url=f"{PLURAL}/{name}/status",
            namespace=NS,
            content=json.dumps({"status": status}),
            headers={"Content-Type": MERGE_PATCH},
            params={"fieldManager": FIELD_MANAGER},  # the door's write query
        ) as response:
            body: JSON = response.json()
            return body

    async def list(self, accept_encoding: str | None = None) -> JSON:
        async with self.api.call_api(
            "GET",
            version=API_VERSION,
            url=PLURAL,
            namespace=NS,
            params={"limit": str(OBJECTS)},
            headers={"Accept-Encoding": accept_encoding} if accept_encoding else None,
        ) as response:
            body: JSON = response.json()
            return body

    async def aclose(self) -> None:
        # kr8s has no close(); its httpx client is `_session`
        if self.api._session is not None:
            await self.api._session.aclose()


class AiohttpTransport:
    """B: the project's one door, `KubeClient`."""

    name = B

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def get(self, name: str) -> JSON:
        body = await self.client.get(EXTERNAL_SOURCES, NS, name)
        assert body is not None
        return body

    async def patch_status(self, name: str, status: JSON) -> JSON:
        return await self.client.patch(
            EXTERNAL_SOURCES, NS, name, {"status": status}, subresource="status"
        )

    async def list(self, accept_encoding: str | None = None) -> JSON:
        params = {"limit": str(OBJECTS)}
        if accept_encoding is None:
            return await self.client.list(EXTERNAL_SOURCES, namespace=NS, params=params)
        # not the product's path: the door's request with an Accept-Encoding it never sends
        async with self.client._request(
            "GET",
            EXTERNAL_SOURCES.path(NS),
            what="LIST ExternalSource",
            params=params,
            headers={"Accept-Encoding": accept_encoding},
        ) as response:
            body: JSON = await response.json(content_type=None)
            return body

    async def aclose(self) -> None:
        await self.client.aclose()


# --- the operations: n requests each -----------------------------------------------------------

Op = Callable[[Transport, int], Awaitable[None]]
_values = itertools.count()


async def op_get(transport: Transport, n: int) -> None:
    for _ in range(n):
        await transport.get(TARGET)


async def op_patch(transport: Transport, n: int) -> None:
    for _ in range(n):
        value = f"bench-{next(_values)}"  # never the value it has: every PATCH writes
        body = await transport.patch_status(TARGET, {"lastHandledReconcileAt": value})
        assert body["status"]["lastHandledReconcileAt"] == value


def op_list(*, httpx_encoding: str | None, aiohttp_encoding: str | None) -> Op:
    """LISTs, each transport asking for this Accept-Encoding (None: what it asks by itself)."""

    async def run(transport: Transport, n: int) -> None:
        encoding = httpx_encoding if transport.name == A else aiohttp_encoding
        for _ in range(n):
            body = await transport.list(encoding)
            assert len(body["items"]) == OBJECTS, len(body["items"])

    return run


async def op_get4(transport: Transport, n: int) -> None:
    async def worker(w: int) -> None:
        for k in range(w, n, CONCURRENCY):
            await transport.get(f"s{k % OBJECTS}")

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


RUNNERS: dict[str, Op] = {
    "get": op_get,
    "patch": op_patch,
    "list": op_list(httpx_encoding=None, aiohttp_encoding=None),
    "get4": op_get4,
    "list_identity": op_list(httpx_encoding="identity", aiohttp_encoding=None),
    "list_gzip": op_list(httpx_encoding=None, aiohttp_encoding=GZIP),
}


# --- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def warm(transport: Transport) -> None:
    """Untimed: the transport's keep-alive connections are open (no handshake in a block)."""
    await asyncio.gather(*(transport.get(TARGET) for _ in range(CONCURRENCY)))


async def block(transport: Transport, op: str, n: int, apiserver: int) -> JSON:
    """One timed block of `n` requests of `op`: the client's CPU and wall, the server's CPU."""
    gc.collect()
    await warm(transport)
    api0 = cpu_seconds(apiserver)
    times0 = os.times()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await RUNNERS[op](transport, n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    times1 = os.times()
    return {
        "requests": n,
        "cpu_s": cpu,
        "wall_s": wall,
        "user_s": times1.user - times0.user,
        "system_s": times1.system - times0.system,
        "apiserver_cpu_s": cpu_seconds(apiserver) - api0,
    }


async def create_objects(client: KubeClient) -> None:
    """The 500 ExternalSources (nothing reconciles them: no controller runs)."""
    gate = asyncio.Semaphore(8)

    async def create(i: int) -> None:
        async with gate:
            obj = external_source(f"s{i}", namespace=NS, url=f"http://127.0.0.1:9/s/{i}")
            await client.create(EXTERNAL_SOURCES, NS, obj)

    await asyncio.gather(*(create(i) for i in range(OBJECTS)))


async def measure(plane: ControlPlane, *, requests: int, rounds: int) -> JSON:
    apiserver = plane._processes["kube-apiserver"].pid
    ours = await connect(kubeconfig=str(plane.kubeconfig), name="bench-transport")
    api = await kr8s.asyncio.api(kubeconfig=str(plane.kubeconfig))
    transports: list[Transport] = [Kr8sTransport(api), AiohttpTransport(ours)]
    try:
        await create_objects(ours)
        # sizes, and what each transport receives for a LIST (httpx asks for gzip)
        one = await transports[1].get(TARGET)
        async with api.call_api(
            "GET", version=API_VERSION, url=PLURAL, namespace=NS, params={"limit": str(OBJECTS)}
        ) as response:
            encoding_a = response.headers.get("content-encoding", "identity")
            list_bytes = len(response.content)
            list_wire_a = response.num_bytes_downloaded  # before decoding
        counts = {
            "get": requests // rounds,
            "patch": max(1, requests // (4 * rounds)),
            "list": LISTS_PER_ROUND,
            "get4": requests // rounds,
            "list_identity": LISTS_PER_ROUND,
            "list_gzip": LISTS_PER_ROUND,
        }
        blocks: dict[str, dict[str, list[JSON]]] = {
            op: {t.name: [] for t in transports} for op in OPS
        }
        for r in range(rounds):
            order = transports if r % 2 == 0 else transports[::-1]
            for op in OPS:
                for transport in order:
                    blocks[op][transport.name].append(
                        await block(transport, op, counts[op], apiserver)
                    )
            print(f"round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for transport in transports:
            await transport.aclose()
    return {
        "object_bytes": len(json.dumps(one, separators=(",", ":"))),
        "list_bytes": list_bytes,
        "list_encoding": {A: encoding_a, B: "identity (no Accept-Encoding)"},
        "list_wire_bytes": {A: list_wire_a},
        "counts": counts,
        "blocks": blocks,
    }


def summarise(blocks: Mapping[str, Mapping[str, list[JSON]]]) -> JSON:
    """Per op and transport: totals and per-request means; per op, the ratios A/B."""
    ops: JSON = {}
    for op, by_transport in blocks.items():
        entry: JSON = {}
        for name, runs in by_transport.items():
            n = sum(b["requests"] for b in runs)
            entry[name] = {
                "requests": n,
                "cpu_ms": sum(b["cpu_s"] for b in runs) / n * 1000,
                "wall_ms": sum(b["wall_s"] for b in runs) / n * 1000,
                "user_ms": sum(b["user_s"] for b in runs) / n * 1000,
                "system_ms": sum(b["system_s"] for b in runs) / n * 1000,
                "apiserver_cpu_ms": sum(b["apiserver_cpu_s"] for b in runs) / n * 1000,
            }
        per_round = [
            a["cpu_s"] / b["cpu_s"] for a, b in zip(by_transport[A], by_transport[B], strict=True)
        ]
        entry["cpu_ratio"] = entry[A]["cpu_ms"] / entry[B]["cpu_ms"]
        entry["cpu_ratio_rounds"] = [min(per_round), max(per_round)]
        entry["wall_ratio"] = entry[A]["wall_ms"] / entry[B]["wall_ms"]
        ops[op] = entry
    return ops


def run(*, requests: int, rounds: int) -> JSON:
    assets = pathlib.Path(os.environ.get(ASSETS_VARIABLE) or DEFAULT_ASSETS)
    why = missing_assets({ASSETS_VARIABLE: str(assets)})
    if why:
        sys.exit(why)
    result: JSON = {"requests": requests, "rounds": rounds, "loadavg_start": os.getloadavg()[0]}
    started = time.monotonic()
    with running_control_plane(assets) as plane:
        plane.kubectl("create", "namespace", NS)
        result["control_plane_s"] = time.monotonic() - started
        result.update(asyncio.run(measure(plane, requests=requests, rounds=rounds)))
    result["ops"] = summarise(result["blocks"])
    result["loadavg_end"] = os.getloadavg()[0]
    result["run_s"] = time.monotonic() - started
    return result


# --- fieldValidation: Warn against Ignore ------------------------------------------------------


class Writer:
    """Writes through the door's `_request` with an explicit `fieldValidation`.

    Not the door's public `create`/`patch`: those build the query themselves (`fieldManager`
    only). Everything else is what `KubeClient._json` does for a write.
    """

    def __init__(self, client: KubeClient, validation: str) -> None:
        self.client = client
        self.name = validation
        self.query = {"fieldManager": FIELD_MANAGER, "fieldValidation": validation}

    async def write_with_headers(
        self, method: str, path: str, body: JSON, content_type: str
    ) -> tuple[JSON, list[str]]:
        async with self.client._request(
            method,
            path,
            what=f"{method} ExternalSource (fieldValidation={self.name})",
            params=self.query,
            data=json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": content_type},
        ) as response:
            result: JSON = await response.json(content_type=None)
            return result, response.headers.getall("Warning", [])

    async def write(self, method: str, path: str, body: JSON, content_type: str) -> JSON:
        return (await self.write_with_headers(method, path, body, content_type))[0]


FvOp = Callable[[Writer, int], Awaitable[None]]


def _value() -> str:
    return f"fv-{next(_values):08d}"  # never the value it has, and always the same length


async def fv_status(writer: Writer, n: int) -> None:
    path = EXTERNAL_SOURCES.path(NS, TARGET, "status")
    for _ in range(n):
        value = _value()
        body = await writer.write(
            "PATCH", path, {"status": {"lastHandledReconcileAt": value}}, MERGE_PATCH
        )
        assert body["status"]["lastHandledReconcileAt"] == value


async def fv_metadata(writer: Writer, n: int) -> None:
    path = EXTERNAL_SOURCES.path(NS, TARGET)
    for _ in range(n):
        value = _value()
        patch = {"metadata": {"annotations": {FV_ANNOTATION: value}}}
        body = await writer.write("PATCH", path, patch, MERGE_PATCH)
        assert body["metadata"]["annotations"][FV_ANNOTATION] == value


async def fv_create(writer: Writer, n: int) -> None:
    path = EXTERNAL_SOURCES.path(NS)
    for _ in range(n):
        name = _value()
        obj = external_source(name, namespace=NS, url=f"http://127.0.0.1:9/{name}")
        body = await writer.write("POST", path, obj, "application/json")
        assert body["metadata"]["name"] == name


FV_RUNNERS: dict[str, FvOp] = {"status": fv_status, "metadata": fv_metadata, "create": fv_create}


async def fv_block(writer: Writer, op: str, n: int, pids: Mapping[str, int]) -> JSON:
    """One timed block of `n` writes: the client's CPU and wall, kube-apiserver's and etcd's CPU."""
    gc.collect()
    await writer.client.get(EXTERNAL_SOURCES, NS, TARGET)  # untimed: the connection is open
    servers0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await FV_RUNNERS[op](writer, n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "writes": n,
        "cpu_s": cpu,
        "wall_s": wall,
        **{f"{name}_cpu_s": cpu_seconds(pid) - servers0[name] for name, pid in pids.items()},
    }


async def measure_field_validation(plane: ControlPlane, *, writes: int, rounds: int) -> JSON:
    pids = {
        "apiserver": plane._processes["kube-apiserver"].pid,
        "etcd": plane._processes["etcd"].pid,
    }
    client = await connect(kubeconfig=str(plane.kubeconfig), name="bench-transport")
    writers = [Writer(client, WARN), Writer(client, IGNORE)]
    try:
        obj = external_source(TARGET, namespace=NS, url="http://127.0.0.1:9/s/0")
        await client.create(EXTERNAL_SOURCES, NS, obj)
        # what the parameter changes: a status PATCH with a field the schema does not have
        warnings = {}
        for writer in writers:
            patch = {"status": {"benchUnknownField": writer.name}}
            path = EXTERNAL_SOURCES.path(NS, TARGET, "status")
            _, warnings[writer.name] = await writer.write_with_headers(
                "PATCH", path, patch, MERGE_PATCH
            )
        per_block = max(1, writes // rounds)
        blocks: dict[str, dict[str, list[JSON]]] = {
            op: {w.name: [] for w in writers} for op in FV_OPS
        }
        for r in range(rounds):
            order = writers if r % 2 == 0 else writers[::-1]
            for op in FV_OPS:
                for writer in order:
                    blocks[op][writer.name].append(await fv_block(writer, op, per_block, pids))
            print(f"round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
        # after the rounds: the servers' background CPU per second (leases, controllers)
        servers0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(IDLE_S)
        idle = {name: (cpu_seconds(pid) - servers0[name]) / IDLE_S for name, pid in pids.items()}
    finally:
        await client.aclose()
    return {
        "warnings": warnings,
        "idle_cpu_ms_per_s": {name: value * 1000 for name, value in idle.items()},
        "writes_per_block": per_block,
        "blocks": blocks,
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarise_field_validation(blocks: Mapping[str, Mapping[str, list[JSON]]]) -> JSON:
    """Per op (and all ops together) and variant: means per write; ratios Ignore/Warn."""
    rounds = len(next(iter(blocks.values()))[WARN])
    pooled = {  # the round's three blocks of a variant as one
        name: [
            {
                key: sum(blocks[op][name][r][key] for op in blocks)
                for key in blocks[next(iter(blocks))][name][r]
            }
            for r in range(rounds)
        ]
        for name in (WARN, IGNORE)
    }
    ops: JSON = {}
    for op, by_variant in [*blocks.items(), (FV_ALL, pooled)]:
        entry: JSON = {}
        for name, runs in by_variant.items():
            n = sum(b["writes"] for b in runs)
            entry[name] = {
                "writes": n,
                **{
                    key.replace("_s", "_ms"): sum(b[key] for b in runs) / n * 1000
                    for key in ("cpu_s", "wall_s", "apiserver_cpu_s", "etcd_cpu_s")
                },
            }
        for key in ("apiserver_cpu_s", "etcd_cpu_s", "cpu_s", "wall_s"):
            per_round = [
                b[key] / a[key] if a[key] else float("nan")
                for a, b in zip(by_variant[WARN], by_variant[IGNORE], strict=True)
            ]
            label = key.replace("_s", "")
            entry[f"{label}_ratio"] = sum(b[key] for b in by_variant[IGNORE]) / sum(
                b[key] for b in by_variant[WARN]
            )
            entry[f"{label}_ratio_rounds"] = per_round
            entry[f"{label}_ratio_median"] = _median(per_round)
        ops[op] = entry
    return ops


def run_field_validation(*, writes: int, rounds: int) -> JSON:
    assets = pathlib.Path(os.environ.get(ASSETS_VARIABLE) or DEFAULT_ASSETS)
    why = missing_assets({ASSETS_VARIABLE: str(assets)})
    if why:
        sys.exit(why)
    result: JSON = {
        "mode": "field_validation",
        "writes": writes,
        "rounds": rounds,
        "loadavg_start": os.getloadavg()[0],
    }
    started = time.monotonic()
    with running_control_plane(assets) as plane:
        plane.kubectl("create", "namespace", NS)
        result["control_plane_s"] = time.monotonic() - started
        result.update(asyncio.run(measure_field_validation(plane, writes=writes, rounds=rounds)))
    result["ops"] = summarise_field_validation(result["blocks"])
    result["loadavg_end"] = os.getloadavg()[0]
    result["run_s"] = time.monotonic() - started
    return result


def fv_table(result: Mapping[str, Any]) -> str:
    rows = [
        (
            "write (sequential)",
            "writes per variant",
            "kube-apiserver CPU ms/write Warn / Ignore",
            "ratio Ignore/Warn, median of rounds (range)",
            "ratio over all rounds",
            "etcd CPU ms/write Warn / Ignore",
            "client CPU ms/write Warn / Ignore",
            "wall ms/write Warn / Ignore",
        ),
        ("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]
    for op, label in [*FV_OPS.items(), (FV_ALL, f"*{FV_ALL}*")]:
        entry = result["ops"][op]
        w, i = entry[WARN], entry[IGNORE]
        per_round = entry["apiserver_cpu_ratio_rounds"]
        rows.append(
            (
                label,
                f"{w['writes']:,}",
                f"{w['apiserver_cpu_ms']:.3f} / {i['apiserver_cpu_ms']:.3f}",
                f"**{entry['apiserver_cpu_ratio_median']:.3f}** "
                f"({min(per_round):.2f} to {max(per_round):.2f})",
                f"{entry['apiserver_cpu_ratio']:.3f}",
                f"{w['etcd_cpu_ms']:.3f} / {i['etcd_cpu_ms']:.3f}",
                f"{w['cpu_ms']:.3f} / {i['cpu_ms']:.3f}",
                f"{w['wall_ms']:.2f} / {i['wall_ms']:.2f}",
            )
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def fv_notes(result: Mapping[str, Any]) -> str:
    warnings = result["warnings"]
    idle = result["idle_cpu_ms_per_s"]

    def shown(values: list[str]) -> str:
        return "; ".join(f"`{v}`" for v in values) if values else "none"

    return (
        f"{result['rounds']} rounds of {result['writes_per_block']} writes per variant and "
        f"operation, blocks alternating Warn Ignore / Ignore Warn. A status PATCH with an "
        f"unknown field got these `Warning` headers: with Warn {shown(warnings[WARN])}, with "
        f"Ignore {shown(warnings[IGNORE])}. Idle after the rounds, kube-apiserver used "
        f"{idle['apiserver']:.0f} ms and etcd {idle['etcd']:.0f} ms of CPU per second "
        f"(kube-controller-manager, leases); that background is in every block's server "
        f"columns. Load average (1 min) {result['loadavg_start']:.2f} at the start, "
        f"{result['loadavg_end']:.2f} at the end; the run took {result['run_s']:.0f} s "
        f"({result['control_plane_s']:.0f} s of it starting the control plane)."
    )


# --- the report --------------------------------------------------------------------------------


def table(result: Mapping[str, Any]) -> str:
    rows = [
        (
            "operation",
            "requests per transport",
            f"CPU ms/request {A}",
            f"CPU ms/request {B}",
            "CPU ratio httpx/aiohttp (single rounds)",
            "wall ms/request httpx / aiohttp",
            "kube-apiserver CPU ms/request httpx / aiohttp",
        ),
        ("---", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]
    for op, label in OPS.items():
        entry = result["ops"][op]
        a, b = entry[A], entry[B]
        low, high = entry["cpu_ratio_rounds"]
        rows.append(
            (
                label,
                f"{a['requests']:,}",
                f"{a['cpu_ms']:.3f}",
                f"{b['cpu_ms']:.3f}",
                f"**{entry['cpu_ratio']:.2f}x** ({low:.2f} to {high:.2f})",
                f"{a['wall_ms']:.2f} / {b['wall_ms']:.2f}",
                f"{a['apiserver_cpu_ms']:.2f} / {b['apiserver_cpu_ms']:.2f}",
            )
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def notes(result: Mapping[str, Any]) -> str:
    wire = result["list_wire_bytes"][A]
    return (
        f"One ExternalSource is {result['object_bytes']:,} bytes of JSON, the LIST "
        f"{result['list_bytes'] / 1024:.0f} KiB; kube-apiserver sent the LIST to kr8s/httpx as "
        f"`{result['list_encoding'][A]}`"
        + (f" ({wire / 1024:.0f} KiB on the wire)" if wire else "")
        + f", to aiohttp uncompressed. {result['rounds']} rounds, blocks alternating A B / B A; "
        f"load average (1 min) {result['loadavg_start']:.2f} at the start, "
        f"{result['loadavg_end']:.2f} at the end; the run took {result['run_s']:.0f} s "
        f"({result['control_plane_s']:.0f} s of it starting the control plane)."
    )


def section_parts() -> tuple[str, str]:
    """The section's body as it is: the transport part and the fieldValidation part (from
    its `### ` heading on), each "" when absent."""
    if not DOCS.exists():
        return "", ""
    section = re.search(
        rf"^## {re.escape(TITLE)}\n(.*?)(?=^## |\Z)", DOCS.read_text(), re.MULTILINE | re.DOTALL
    )
    if section is None:
        return "", ""
    body = section.group(1)
    start = body.find(f"\n### {FV_TITLE}\n")
    if start < 0:
        return body.strip(), ""
    return body[:start].strip(), body[start:].strip()


def hand_written_reading(part: str, marker: str) -> str:
    """A part's hand-written reading (from its `marker` line on), if any."""
    start = part.find(f"\n{marker}")
    return part[start:].strip() if start >= 0 else ""


def transport_part(result: Mapping[str, Any], reading: str) -> str:
    command = (
        f"python -m tests.bench.bench_transport --requests {result['requests']} "
        f"--rounds {result['rounds']} --write-docs"
    )
    return (
        f"{describe_machine()}\n\nRun: `{command}` (one run, every row from it; A = kr8s "
        f"`Api.call_api`, B = `controller.runtime.client.KubeClient`, same process, same "
        f"objects, admin kubeconfig).\n\n{table(result)}\n\n{notes(result)}\n"
        + (f"\n{reading}\n" if reading else "")
    )


def field_validation_part(result: Mapping[str, Any], reading: str) -> str:
    command = (
        f"python -m tests.bench.bench_transport --field-validation --writes {result['writes']} "
        f"--rounds {result['rounds']} --write-docs"
    )
    return (
        f"### {FV_TITLE}\n\n{describe_machine()}\n\nRun: `{command}` (one run, every row "
        f"from it; both variants through `KubeClient._request` with `fieldManager` and an "
        f"explicit `fieldValidation`, the only difference between them; one ExternalSource "
        f"patched, new ones created; server columns from `/proc/<pid>/stat`).\n\n"
        f"{fv_table(result)}\n\n{fv_notes(result)}\n" + (f"\n{reading}\n" if reading else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="GETs per transport")
    parser.add_argument(
        "--rounds", type=int, help="rounds of interleaved blocks (6; 12 with --field-validation)"
    )
    parser.add_argument(
        "--field-validation",
        action="store_true",
        help="measure fieldValidation=Warn against Ignore on writes instead of the transports",
    )
    parser.add_argument("--writes", type=int, default=3000, help="writes per variant and operation")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--results", type=pathlib.Path, help="re-render the report of a run's printed JSON"
    )
    args = parser.parse_args()
    if args.results:
        result = json.loads(args.results.read_text())
    elif args.field_validation:
        result = run_field_validation(writes=args.writes, rounds=args.rounds or 12)
        print(json.dumps(result, indent=2))
    else:
        result = run(requests=args.requests, rounds=args.rounds or 6)
        print(json.dumps(result, indent=2))
    field_validation = result.get("mode") == "field_validation"
    if field_validation:
        print(fv_table(result))
        print(fv_notes(result))
    else:
        print(table(result))
        print(notes(result))
    if args.write_docs:
        transport, fv = section_parts()
        if field_validation:
            fv = field_validation_part(result, hand_written_reading(fv, FV_READING))
        else:
            transport = transport_part(result, hand_written_reading(transport, READING))
        replace_section(TITLE, f"{transport.strip()}\n\n{fv.strip()}".strip())


if __name__ == "__main__":
    main()
