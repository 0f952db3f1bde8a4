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
    python -m tests.bench.bench_transport --results RUN.json --write-docs   # re-render a run

`--requests` is the GETs per transport in the whole run (sequential and concurrent each);
PATCHes are a quarter of it, LISTs 5 per round and variant. Needs the envtest binaries of the
e2e tier in KUBEBUILDER_ASSETS (default ~/.cache/envtest-assets). Results go to
docs/benchmarks.md with `--write-docs` ("Kubernetes transport: kr8s/httpx against aiohttp");
the reading below the table there is written by hand and kept when the section is written
again.
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
            params={"fieldManager": FIELD_MANAGER},
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


def hand_written_reading() -> str:
    """The section's hand-written reading (from its `Reading the numbers` line on), if any."""
    if not DOCS.exists():
        return ""
    section = re.search(
        rf"^## {re.escape(TITLE)}\n.*?(?=^## |\Z)", DOCS.read_text(), re.MULTILINE | re.DOTALL
    )
    if section is None:
        return ""
    start = section.group(0).find(f"\n{READING}")
    return section.group(0)[start:].strip() if start >= 0 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="GETs per transport")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--results", type=pathlib.Path, help="re-render the report of a run's printed JSON"
    )
    args = parser.parse_args()
    if args.results:
        result = json.loads(args.results.read_text())
    else:
        result = run(requests=args.requests, rounds=args.rounds)
        print(json.dumps(result, indent=2))
    print(table(result))
    print(notes(result))
    if args.write_docs:
        command = (
            f"python -m tests.bench.bench_transport --requests {result['requests']} "
            f"--rounds {result['rounds']} --write-docs"
        )
        reading = hand_written_reading()
        replace_section(
            TITLE,
            f"{describe_machine()}\n\nRun: `{command}` (one run, every row from it; A = kr8s "
            f"`Api.call_api`, B = `controller.runtime.client.KubeClient`, same process, same "
            f"objects, admin kubeconfig).\n\n{table(result)}\n\n{notes(result)}\n"
            + (f"\n{reading}\n" if reading else ""),
        )


if __name__ == "__main__":
    main()
