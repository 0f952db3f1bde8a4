"""Benchmark: scale on a real kube-apiserver — cold start, writes, CPU per check, schedule.

Why a separate bench: `bench_fastpath` runs against the in-process emulator, whose Python
schema validation, not the controller, bounds its cold start. Here everything is real and
separate, as in a cluster: etcd + kube-apiserver + kube-controller-manager of the e2e tier
(`tests/e2e/controlplane.py`), the origin in its own process (aiohttp, ETags, 1 KiB bodies,
loopback), and the controller as the installed `externalsource-controller` console script
(default flags, admin kubeconfig). CPU and RSS are the controller process's own, read from
`/proc/<pid>/stat` and `/proc/<pid>/status`.

One run, in this order (N sources at `interval: 1m` in one namespace):

A. cold start: the controller (memory backend) is up and idle; the bench creates N sources
   and follows one LIST + watch (see `ReadyWatch`) until all are Ready.
   Controller CPU and the API server's `apiserver_request_total` writes are taken from
   before the first create until the writes stop (queued Events included), per source.
B. `requestedAt` → new revision: 20 times, the origin's body of one source changes, the
   annotation is set, and the source is polled until `status.artifact.revision` changes.
C. takeover: the memory controller stops and a filesystem-backed one starts over the N Ready
   sources with an empty store: every source is fetched again (informative).
D. restart: the filesystem controller stops and starts again; time from the process start
   until the origin has seen a HEAD for every source, and the writes meanwhile (target 0).
E. steady state: from the end of D, a window of interval x (1 + jitter) plus the spread of
   D's checks plus 3 s, in which every source is checked once more. CPU per check = the
   controller's CPU over the window / HEADs in the window. Schedule lateness is measured at
   the origin: per source, (second HEAD - first HEAD) - interval; the controller's jitter
   alone spreads it over ±interval x jitter%, so the target is p99 ≤ jitter + 2 s.
F. the floors, from a subprocess against the same origin: a bare aiohttp loop of
   conditional HEADs (If-None-Match, answered 304) back to back, its CPU per request and ours
   as a ratio to it; the same HEADs paced at the steady state's rate (N per interval, the
   loop idle in between, as the controller's checks arrive); the same sleeps without
   requests (what waking an idle event loop costs on this machine).

With `--profile DIR`, py-spy samples the controller during A and E (raw collapsed stacks
plus a summary in DIR); the profiler slows the process, so take numbers from a run without.

    python -m tests.bench.bench_scale [--sources 1000] [--write-docs] [--profile DIR]
    python -m tests.bench.bench_scale --results RUN.json --write-docs   # re-render a run
    python -m tests.bench.bench_scale --cold-only --controller-flag=--concurrent=8  # A only

Needs the envtest binaries of the e2e tier (etcd, kube-apiserver, kube-controller-manager,
kubectl) in KUBEBUILDER_ASSETS (default ~/.cache/envtest-assets); py-spy
(`pip install py-spy`) only for `--profile`. Results go to docs/benchmarks.md with
`--write-docs` ("Scale on a real API server, N sources"); the reading of them is written
by hand below those sections.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import concurrent.futures
import contextlib
import datetime
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import aiohttp
import httpx
from aiohttp import web

from tests.bench.machine import describe_machine, replace_section
from tests.e2e import procs
from tests.e2e.controlplane import (
    ASSETS_VARIABLE,
    WRITE_VERBS,
    ControlPlane,
    missing_assets,
    running_control_plane,
    wait_for,
)
from tests.e2e.processes import ControllerProcess
from tests.e2e.sources import REQUESTED_AT, external_source, source_path

NS = "bench"
INTERVAL_S = 60.0
JITTER_PERCENT = 5.0  # the controller's default --interval-jitter-percentage
BODY_SIZE = 1024
LATENCY_SAMPLES = 20
#: the resources only the controller writes during the measured phases (Events separately)
OURS = ("externalsources", "externalartifacts")
CLK_TCK = os.sysconf("SC_CLK_TCK")
APF_LOG = "API Priority and Fairness detected; client-side rate limit off"
DEFAULT_ASSETS = pathlib.Path.home() / ".cache" / "envtest-assets"


# --- the origin (child process) --------------------------------------------------------------


def serve_origin(count: int, port_file: pathlib.Path) -> None:
    """Child: N resources `/s/<i>` (1 KiB JSON, ETag `"g<gen>"`), 304 on a matching
    If-None-Match; records each request's time (CLOCK_MONOTONIC, shared by all processes).

    Control: `GET /_stats?since=T` (counts since T), `GET /_heads` (every HEAD time per
    source), `POST /_bump/<i>` (new body and ETag for source i).
    """
    heads: list[list[float]] = [[] for _ in range(count)]
    last_get = [0.0] * count
    gens = [0] * count

    def body(i: int) -> bytes:
        head = json.dumps({"source": i, "generation": gens[i], "pad": ""}).encode()
        return head[:-2] + b"x" * (BODY_SIZE - len(head)) + head[-2:]

    bodies = [body(i) for i in range(count)]

    async def resource(request: web.Request) -> web.Response:
        now = time.monotonic()
        i = int(request.match_info["i"])
        etag = f'"g{gens[i]}"'
        if request.method == "HEAD":
            heads[i].append(now)
        else:
            last_get[i] = now
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=bodies[i], content_type="application/json", headers={"ETag": etag})

    async def stats(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        counts = [len(h) - bisect.bisect_left(h, since) for h in heads]
        firsts = [h[bisect.bisect_left(h, since)] for h, c in zip(heads, counts, strict=True) if c]
        return web.json_response(
            {
                "head_sources": sum(1 for c in counts if c),
                "heads": sum(counts),
                "first_head": min(firsts, default=None),
                "last_first_head": max(firsts, default=None),
                "get_sources": sum(1 for t in last_get if t >= since),
            }
        )

    async def all_heads(request: web.Request) -> web.Response:
        return web.json_response(heads)

    async def bump(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        gens[i] += 1
        bodies[i] = body(i)
        return web.json_response({"etag": f'"g{gens[i]}"'})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", r"/s/{i:\d+}", resource)
        app.router.add_get("/_stats", stats)
        app.router.add_get("/_heads", all_heads)
        app.router.add_post(r"/_bump/{i:\d+}", bump)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_file.write_text(str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(main())


class Origin:
    """The origin child process and its control endpoints."""

    def __init__(self, *, count: int, directory: pathlib.Path) -> None:
        port_file = directory / "origin.port"
        self.process = procs.spawn(
            [
                sys.executable,
                "-m",
                "tests.bench.bench_scale",
                "--serve-origin",
                str(count),
                str(port_file),
            ],
            log_path=directory / "origin.log",
            cwd=pathlib.Path(__file__).resolve().parents[2],
        )
        port = wait_for(
            lambda: port_file.exists() and port_file.read_text(), timeout=30, what="origin port"
        )
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=30.0)

    def url(self, i: int) -> str:
        return f"{self.base}/s/{i}"

    def stats(self, since: float) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get("/_stats", params={"since": since}).json()
        return body

    def heads(self) -> list[list[float]]:
        body: list[list[float]] = self.client.get("/_heads").json()
        return body

    def bump(self, i: int) -> None:
        self.client.post(f"/_bump/{i}").raise_for_status()

    def close(self) -> None:
        self.client.close()
        procs.stop(self.process)


# --- the floor (child process) ---------------------------------------------------------------


def run_floor(base: str, count: int, total: int) -> None:
    """Child: a bare aiohttp loop of conditional HEADs over `/s/<i>`; prints its CPU per request.

    One warm-up HEAD per resource learns its ETag (not counted); then HEADs with
    If-None-Match, one after another on a keep-alive connection, until `total` are done.
    """

    async def main() -> dict[str, float]:
        async with aiohttp.ClientSession() as session:
            etags = []
            for i in range(count):
                async with session.head(f"{base}/s/{i}") as response:
                    etags.append(response.headers["ETag"])
            urls = [f"{base}/s/{i}" for i in range(count)]
            done = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            while done < total:
                for url, etag in zip(urls, etags, strict=True):
                    async with session.head(url, headers={"If-None-Match": etag}) as response:
                        assert response.status == 304, response.status
                    done += 1
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            # paced: the steady state's rate (N per interval), each request from an idle loop
            paced, pause = min(count, 600), INTERVAL_S / count
            cpu0 = time.process_time()
            for url, etag in list(zip(urls, etags, strict=True))[:paced]:
                await asyncio.sleep(pause)
                async with session.head(url, headers={"If-None-Match": etag}) as response:
                    assert response.status == 304, response.status
            paced_cpu = time.process_time() - cpu0
            # what waking an idle event loop costs here: the same sleeps without requests
            cpu0 = time.process_time()
            for _ in range(paced):
                await asyncio.sleep(pause)
            wakeup_cpu = time.process_time() - cpu0
        return {
            "requests": done,
            "cpu_s": cpu,
            "wall_s": wall,
            "paced_requests": paced,
            "paced_cpu_s": paced_cpu,
            "wakeup_cpu_s": wakeup_cpu,
        }

    print(json.dumps(asyncio.run(main())))


def measure_floor(origin: Origin, count: int) -> dict[str, float]:
    total = max(5000, count)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_scale",
            "--floor",
            origin.base,
            str(count),
            str(total),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    )
    body: dict[str, float] = json.loads(result.stdout)
    return body


# --- measuring the controller and the API server ---------------------------------------------


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) from /proc/<pid>/stat, seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    return sum(cpu_split(pid))


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used (non-idle time in /proc/stat)."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK  # minus idle and iowait


def control_plane_cpu(plane: ControlPlane) -> dict[str, float]:
    """CPU seconds used so far by etcd, kube-apiserver and kube-controller-manager."""
    return {name: cpu_seconds(p.pid) for name, p in plane._processes.items()}


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MiB."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    values = {
        k: int(v.split()[0]) / 1024 for k, v in re.findall(r"^(Vm\w+):\s+(.+)$", status, re.M)
    }
    return values["VmRSS"], values["VmHWM"]


def pid_of(controller: ControllerProcess) -> int:
    assert controller.process is not None
    return controller.process.pid


WriteKey = tuple[str, str, str]  # verb, resource, subresource
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def write_totals(plane: ControlPlane) -> collections.Counter[WriteKey]:
    """Write requests so far by (verb, resource, subresource), from the API server's
    `apiserver_request_total` (a string scan: its /metrics is several MB)."""
    totals: collections.Counter[WriteKey] = collections.Counter()
    for line in plane.api.get("/metrics").text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line.rsplit(" ", 1)
        labels = dict(_LABEL.findall(labels_text))
        if labels.get("verb") in WRITE_VERBS:
            key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
            totals[key] += round(float(value))
    return totals


def ours(delta: Mapping[WriteKey, int]) -> dict[str, int]:
    """The controller's writes in a delta: our two resources and Events, as `VERB res[/sub]`."""
    found: dict[str, int] = {}
    for (verb, resource, sub), n in sorted(delta.items()):
        if n and resource in (*OURS, "events"):
            found[f"{verb} {resource}{'/' + sub if sub else ''}"] = n
    return found


def diff(
    before: collections.Counter[WriteKey], after: collections.Counter[WriteKey]
) -> dict[WriteKey, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def settle(plane: ControlPlane, *, quiet: float = 3.0, timeout: float = 120.0) -> float:
    """Wait until the controller's writes (incl. queued Events) stop for `quiet` seconds;
    the monotonic time of the last change seen."""
    last = ours(write_totals(plane))
    changed = time.monotonic()
    deadline = changed + timeout
    while time.monotonic() - changed < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"writes still going after {timeout}s")
        time.sleep(0.5)
        now = ours(write_totals(plane))
        if now != last:
            last, changed = now, time.monotonic()
    return changed


class ReadyWatch(threading.Thread):
    """Which sources are Ready, from one LIST and then one watch (started before the creates).

    Not a LIST poll: a poll of N objects every few hundred ms costs the API server more CPU
    than the controller's own writes (it serialises the whole list each time) and would be
    measured as the controller's cold start; an extra watcher of the same resource costs the
    API server almost nothing (one serialisation per event, shared by all watchers).
    `all_ready_at` is the monotonic time the count reached `count`.
    """

    def __init__(self, plane: ControlPlane, count: int) -> None:
        super().__init__(daemon=True)
        self.plane = plane
        self.count = count
        self.ready: set[str] = set()
        self.all_ready_at: float | None = None
        self.done = threading.Event()
        self.error: BaseException | None = None
        listing = plane.api.get(source_path(NS)).json()
        self.resource_version = listing["metadata"]["resourceVersion"]
        for obj in listing["items"]:
            self._see(obj)

    def _see(self, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        conditions = (obj.get("status") or {}).get("conditions") or ()
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            self.ready.add(name)
        else:
            self.ready.discard(name)
        if len(self.ready) >= self.count and self.all_ready_at is None:
            self.all_ready_at = time.monotonic()
            self.done.set()

    def run(self) -> None:
        params = {"watch": "1", "resourceVersion": self.resource_version, "timeoutSeconds": "3600"}
        try:
            with self.plane.api.stream(
                "GET", source_path(NS), params=params, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                for line in response.iter_lines():
                    if line.strip():
                        self._see(json.loads(line)["object"])
                    if self.done.is_set():
                        return
        except BaseException as exc:  # reported by wait()
            self.error = exc
            self.done.set()

    def wait(self, *, timeout: float) -> float:
        if not self.done.wait(timeout) or self.all_ready_at is None:
            raise AssertionError(
                f"{len(self.ready)} of {self.count} sources Ready after {timeout}s"
                + (f" (watch failed: {self.error!r})" if self.error else "")
            )
        return self.all_ready_at


def warnings(controller: ControllerProcess) -> dict[str, int]:
    """Log lines at warning level or above, by event and error (a healthy run has none)."""
    found: collections.Counter[str] = collections.Counter(
        " ".join(str(r[k]) for k in ("event", "error", "resource") if k in r)
        for r in controller.log_events()
        if r.get("level") in ("warning", "warn", "error", "critical")
    )
    return dict(found)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Profiler:
    """py-spy record on a pid (raw collapsed stacks) until `stop()`."""

    def __init__(self, directory: pathlib.Path | None, name: str, pid: int) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.output = directory / f"{name}.txt"
        self.process = subprocess.Popen(
            [
                str(pathlib.Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / f"{name}.log").open("wb"),
        )
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        summary = summarise(self.output)
        self.output.with_suffix(".summary.txt").write_text(summary)
        print(f"--- profile {self.output.name} ---\n{summary}", flush=True)


#: leaf frames of a thread that waits (py-spy's idle detection misses some under --nonblocking)
IDLE_LEAVES = ("EpollSelector.select", "Condition.wait", "Event.wait", "Thread.join")
#: (category, a fragment of a frame), the first category found in the task's own frames wins
CATEGORIES = (
    ("Events (controller/events.py)", "controller/events.py"),
    ("informers (controller/runtime/informer.py)", "controller/runtime/informer.py"),
    ("origin fetch (generators/)", "generators/"),
    ("Kubernetes API calls (controller/runtime/client.py)", "controller/runtime/client.py"),
    ("storage and packaging (storage/)", "storage/"),
    ("API request bodies (aiohttp's writer task)", "ClientRequest.write_bytes"),
    ("reconciler's own code (controller/)", "controller/"),
    ("event loop, other", ""),
)
#: cross-cutting costs, counted wherever they occur
CROSS_CUTTING = (
    ("socket writes (asyncio transport write)", "_SelectorSocketTransport.write"),
    ("TLS (asyncio sslproto)", "asyncio/sslproto.py"),
    ("JSON encode/decode", "json/"),
    ("logging (structlog, incl. filtered debug calls)", "structlog/"),
    ("metrics (prometheus_client)", "prometheus_client/"),
    ("worker threads (anyio to_thread)", "anyio/to_thread.py"),
)


def _task_start(frames: list[str]) -> int:
    """Index of the first frame below the event loop's last callback (a task's own stack)."""
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].startswith("Handle._run "):
            return index + 1
    return 0


def summarise(raw: pathlib.Path, *, top: int = 25) -> str:
    """Where a py-spy raw (collapsed) profile spends its busy samples.

    Samples whose leaf is a wait (`IDLE_LEAVES`) are counted apart as idle; shares are of
    the busy rest: by category (first matching frame from the root), cross-cutting costs,
    and the top functions by self and inclusive samples.
    """
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    category: collections.Counter[str] = collections.Counter()
    cross: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        task = frames[_task_start(frames) :] or frames[-1:]
        category[next(name for name, part in CATEGORIES if any(part in f for f in task))] += count
        for name, part in CROSS_CUTTING:
            if any(part in f for f in frames):
                cross[name] += count
    busy = max(busy, 1)

    def share(counter: collections.Counter[str], limit: int | None = None) -> list[str]:
        return [f"{100 * n / busy:5.1f}%  {f}" for f, n in counter.most_common(limit)]

    lines = [f"busy samples: {busy} (idle samples left out: {idle})", "", "by category:"]
    lines += share(category)
    lines += ["", "cross-cutting:", *share(cross), "", "self:", *share(own, top)]
    lines += ["", "inclusive:", *share(inclusive, top * 2)]
    return "\n".join(lines) + "\n"


# --- the run ---------------------------------------------------------------------------------


def create_sources(plane: ControlPlane, origin: Origin, count: int) -> None:
    def create(i: int) -> None:
        obj = external_source(f"s{i}", namespace=NS, url=origin.url(i), interval="1m")
        plane.api.post(source_path(NS), json=obj).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))


def revision(plane: ControlPlane, name: str) -> str | None:
    obj = plane.get(source_path(NS, name)) or {}
    value = ((obj.get("status") or {}).get("artifact") or {}).get("revision")
    return str(value) if value else None


def request_latency(plane: ControlPlane, origin: Origin, i: int) -> float:
    name = f"s{i}"
    old = revision(plane, name)
    origin.bump(i)
    stamp = datetime.datetime.now(datetime.UTC).isoformat()
    patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
    started = time.perf_counter()
    plane.api.patch(
        source_path(NS, name),
        content=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    ).raise_for_status()
    while revision(plane, name) == old:
        if time.perf_counter() - started > 30:
            raise AssertionError(f"{name}: no new revision 30 s after requestedAt")
        time.sleep(0.01)
    return time.perf_counter() - started


def run(
    count: int,
    *,
    profile: pathlib.Path | None,
    flags: Sequence[str] = (),
    cold_only: bool = False,
) -> dict[str, Any]:
    assets = pathlib.Path(os.environ.get(ASSETS_VARIABLE) or DEFAULT_ASSETS)
    reason = missing_assets({ASSETS_VARIABLE: str(assets)})
    if reason:
        raise SystemExit(reason)
    poll = max(0.2, count / 5000)
    result: dict[str, Any] = {
        "sources": count,
        "loadavg_start": os.getloadavg()[0],
        "controller_flags": list(flags),
    }
    with running_control_plane(assets) as plane, _workdir() as work:
        origin = Origin(count=count, directory=work)
        plane.kubectl("create", "namespace", NS)
        memory = ControllerProcess(
            name="memory", directory=work / "memory", kubeconfig=plane.kubeconfig, args=flags
        )
        memory.start().wait_ready(timeout=60)
        time.sleep(2.0)  # start-up done, informers idle
        pid = pid_of(memory)
        print(f"controller (memory) pid {pid}; creating {count} sources", flush=True)

        # A. cold start
        profiler = Profiler(profile, "coldstart", pid)
        writes0, cpu0 = write_totals(plane), cpu_seconds(pid)
        busy0, plane_cpu0 = machine_busy(), control_plane_cpu(plane)
        others0 = time.process_time(), cpu_seconds(origin.process.pid)
        watch = ReadyWatch(plane, count)
        watch.start()
        started = time.monotonic()
        create_sources(plane, origin, count)
        created = time.monotonic()
        all_ready = watch.wait(timeout=max(120.0, count * 0.1))
        cpu_ready = cpu_seconds(pid)
        budget = {
            "controller": cpu_ready - cpu0,
            **{k: v - plane_cpu0[k] for k, v in control_plane_cpu(plane).items()},
            "bench (creates, watch)": time.process_time() - others0[0],
            "origin": cpu_seconds(origin.process.pid) - others0[1],
        }
        settled = settle(plane)
        cpu_settled = cpu_seconds(pid)
        writes = ours(diff(writes0, write_totals(plane)))
        writes.pop("POST externalsources", None)  # the bench's own creates
        profiler.stop()
        rss, hwm = memory_mib(pid)
        reasons = collections.Counter(
            f"{e.get('involvedObject', {}).get('kind')} {e.get('reason')}"
            for e in (plane.get(f"/api/v1/namespaces/{NS}/events") or {})["items"]
        )
        result["cold_start"] = {
            "create_s": created - started,
            "all_ready_s": all_ready - started,
            "writes_settled_s": settled - started,
            "cpu_to_ready_s": cpu_ready - cpu0,
            "cpu_to_ready_by_process_s": budget,
            "cpu_s": cpu_settled - cpu0,
            "cpu_ms_per_source": (cpu_settled - cpu0) / count * 1000,
            "machine_cores_busy": (machine_busy() - busy0) / (time.monotonic() - started),
            "control_plane_cpu_s": {
                k: v - plane_cpu0[k] for k, v in control_plane_cpu(plane).items()
            },
            "apf_detected": bool(memory.log_events(APF_LOG)),
            "writes": writes,
            "writes_per_source": sum(n for k, n in writes.items() if "events" not in k) / count,
            "events_per_source": sum(n for k, n in writes.items() if "events" in k) / count,
            "event_reasons": dict(reasons),
            "rss_mib": rss,
            "hwm_mib": hwm,
            "log_warnings": warnings(memory),
        }
        print(json.dumps(result["cold_start"]), flush=True)
        if cold_only:
            memory.stop()
            origin.close()
            return result

        # B. requestedAt -> new revision
        latencies = [request_latency(plane, origin, i % count) for i in range(LATENCY_SAMPLES)]
        result["requested_at_s"] = {
            "p50": statistics.median(latencies),
            "max": max(latencies),
            "samples": len(latencies),
        }
        print(json.dumps(result["requested_at_s"]), flush=True)
        memory.stop()

        # C. takeover by a filesystem-backed controller with an empty store
        fs = ControllerProcess(
            name="filesystem",
            directory=work / "filesystem",
            kubeconfig=plane.kubeconfig,
            storage="filesystem",
            args=flags,
        )
        writes0, plane_cpu0 = write_totals(plane), control_plane_cpu(plane)
        started = time.monotonic()
        fs.start()
        wait_for(
            lambda: origin.stats(started)["get_sources"] == count,
            timeout=max(120.0, count * 0.1),
            what="every source fetched by the filesystem controller",
            interval=poll,
        )
        fetched = time.monotonic()
        settle(plane)
        writes = ours(diff(writes0, write_totals(plane)))
        result["takeover"] = {
            "all_fetched_s": fetched - started,
            "cpu_ms_per_source": cpu_seconds(pid_of(fs)) / count * 1000,
            "writes": writes,
            "writes_per_source": sum(n for k, n in writes.items() if "events" not in k) / count,
            "control_plane_cpu_s": {
                k: v - plane_cpu0[k] for k, v in control_plane_cpu(plane).items()
            },
            "apf_detected": bool(fs.log_events(APF_LOG)),
        }
        print(json.dumps(result["takeover"]), flush=True)
        fs.stop()

        # D. restart over N Ready sources whose artifacts are on disk
        writes0 = write_totals(plane)
        started = time.monotonic()
        fs.start()
        pid = pid_of(fs)
        wait_for(
            lambda: origin.stats(started)["head_sources"] == count,
            timeout=max(60.0, count * 0.05),
            what="every source checked after the restart",
            interval=0.05,
        )
        checked = time.monotonic()
        cpu_w0 = cpu_seconds(pid)
        stats = origin.stats(started)
        time.sleep(3.0)
        writes = ours(diff(writes0, write_totals(plane)))
        result["restart"] = {
            "first_check_s": stats["first_head"] - started,
            "all_checked_s": checked - started,
            "cpu_s": cpu_w0,
            "gets": origin.stats(started)["get_sources"],
            "writes": writes,
        }
        print(json.dumps(result["restart"]), flush=True)

        # E. steady state: every source's next check, from the origin's clock
        spread = stats["last_first_head"] - stats["first_head"]
        window = INTERVAL_S * (1 + JITTER_PERCENT / 100) + spread + 3.0
        profiler = Profiler(profile, "steady", pid)
        window_start = time.monotonic()
        split0, busy0 = cpu_split(pid), machine_busy()
        cpu_w0 = sum(split0)
        time.sleep(window - (time.monotonic() - checked))
        split1, busy1 = cpu_split(pid), machine_busy()
        cpu_w1 = sum(split1)
        window_end = time.monotonic()
        profiler.stop()
        rss, hwm = memory_mib(pid)
        heads = origin.heads()
        gaps, missed, in_window = [], 0, 0
        for times in heads:
            after = [t for t in times if t >= started]
            in_window += sum(1 for t in after if window_start <= t < window_end)
            if len(after) >= 2:
                gaps.append(after[1] - after[0] - INTERVAL_S)
            else:
                missed += 1
        result["steady"] = {
            "window_s": window_end - window_start,
            "checks": in_window,
            "cpu_s": cpu_w1 - cpu_w0,
            "cpu_ms_per_check": (cpu_w1 - cpu_w0) / max(in_window, 1) * 1000,
            "cores": (cpu_w1 - cpu_w0) / (window_end - window_start),
            "user_s": split1[0] - split0[0],
            "system_s": split1[1] - split0[1],
            "machine_cores_busy": (busy1 - busy0) / (window_end - window_start),
            "lateness_p50_s": percentile(gaps, 50) if gaps else None,
            "lateness_p99_s": percentile(gaps, 99) if gaps else None,
            "lateness_max_s": max(gaps) if gaps else None,
            "lateness_min_s": min(gaps) if gaps else None,
            "not_checked_twice": missed,
            "rss_mib": rss,
            "hwm_mib": hwm,
            "log_warnings": warnings(fs),
        }
        print(json.dumps(result["steady"]), flush=True)
        fs.stop()

        # F. the floor
        floor = measure_floor(origin, count)
        floor_ms = floor["cpu_s"] / floor["requests"] * 1000
        result["floor"] = {
            **floor,
            "cpu_ms_per_request": floor_ms,
            "paced_cpu_ms_per_request": floor["paced_cpu_s"] / floor["paced_requests"] * 1000,
            "wakeup_cpu_ms": floor["wakeup_cpu_s"] / floor["paced_requests"] * 1000,
        }
        result["ratio_to_floor"] = result["steady"]["cpu_ms_per_check"] / floor_ms
        print(json.dumps(result["floor"]), flush=True)
        origin.close()
    result["loadavg_end"] = os.getloadavg()[0]
    return result


@contextlib.contextmanager
def _workdir() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        yield pathlib.Path(directory)


# --- the report --------------------------------------------------------------------------------


def _writes_text(writes: Mapping[str, int], count: int) -> str:
    return ", ".join(f"{k} {n / count:g}" for k, n in writes.items()) or "none"


def targets(n: int) -> dict[str, str]:
    """Issue 12's targets for this size (1,000 and 10,000 sources have different ones)."""
    large = n >= 10_000
    return {
        "cold": "all Ready" if large else "≤ 8 s",
        "rss": "< 300 MiB" if large else "≤ 150 MiB",
        "restart": "—" if large else "≤ 5 s",
    }


def _budget_rows(cold: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every process's CPU from the first create to all Ready, and the wall time it needs at
    least on this machine's cores (the cold start cannot be shorter unless the sum shrinks)."""
    budget: Mapping[str, float] | None = cold.get("cpu_to_ready_by_process_s")
    if not budget:
        return []
    cores = os.cpu_count() or 1
    total = sum(budget.values())
    parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in budget.items())
    return [
        (
            "CPU of every process until all Ready (CPU-s)",
            f"{total:.1f} ({parts})",
            "—",
        ),
        (
            f"… the least wall time that needs on {cores} cores",
            f"{total / cores:.1f} s",
            "—",
        ),
    ]


def table(result: Mapping[str, Any]) -> str:
    n = result["sources"]
    goal = targets(n)
    plane_cpu = result["cold_start"]["control_plane_cpu_s"]
    requests = n + sum(result["cold_start"]["writes"].values())
    cold, steady, restart = result["cold_start"], result["steady"], result["restart"]
    takeover, floor = result["takeover"], result["floor"]
    jitter = INTERVAL_S * JITTER_PERCENT / 100
    rows = [
        ("measure", "result", "target (issue 12)"),
        ("---", "---:", "---"),
        (
            f"cold start: {n:,} new sources → all Ready",
            f"{cold['all_ready_s']:.1f} s",
            goal["cold"],
        ),
        ("… of which creating them (the bench's POSTs)", f"{cold['create_s']:.1f} s", "—"),
        ("… until the last queued write (Events)", f"{cold['writes_settled_s']:.1f} s", "—"),
        ("controller CPU per new source", f"{cold['cpu_ms_per_source']:.2f} ms", "≤ 5 ms"),
        ("API writes per new source (Events apart)", f"{cold['writes_per_source']:g}", "≤ 4"),
        ("Events per new source", f"{cold['events_per_source']:g}", "≤ 1, async"),
        (
            "kube-apiserver + etcd CPU during the cold start (per write, creates included)",
            f"{plane_cpu['kube-apiserver']:.1f} s + {plane_cpu['etcd']:.1f} s "
            f"({(plane_cpu['kube-apiserver'] + plane_cpu['etcd']) / requests * 1000:.1f} ms)",
            "—",
        ),
        *_budget_rows(cold),
        ("RSS after the cold start (memory backend)", f"{cold['rss_mib']:.0f} MiB", goal["rss"]),
        (
            f"`requestedAt` → new revision, p50 (max) of {result['requested_at_s']['samples']}",
            f"{result['requested_at_s']['p50'] * 1000:.0f} ms "
            f"({result['requested_at_s']['max'] * 1000:.0f} ms)",
            "p50 < 300 ms",
        ),
        (
            "takeover: filesystem controller, empty store, all re-fetched",
            f"{takeover['all_fetched_s']:.1f} s, {takeover['writes_per_source']:g} writes/source",
            "—",
        ),
        (
            "restart over Ready sources (filesystem): all checked",
            f"{restart['all_checked_s']:.1f} s (first {restart['first_check_s']:.1f} s)",
            goal["restart"],
        ),
        ("… API writes during the restart", str(sum(restart["writes"].values())), "0"),
        (
            "steady state: CPU per not-modified check",
            f"{steady['cpu_ms_per_check']:.3f} ms",
            "≤ 0.4 ms",
        ),
        (
            "floor: bare aiohttp conditional HEAD, CPU per request",
            f"{result['floor']['cpu_ms_per_request']:.3f} ms",
            "—",
        ),
        (
            "floor paced at the steady state's rate (idle loop between requests)",
            f"{result['floor']['paced_cpu_ms_per_request']:.3f} ms",
            "—",
        ),
        (
            "… of which waking the idle loop (the same sleeps, no request)",
            f"{result['floor']['wakeup_cpu_ms']:.3f} ms",
            "—",
        ),
        ("CPU per check / floor", f"{result['ratio_to_floor']:.2f}x", "≤ 1.5x"),
        (
            "CPU per check / paced floor",
            f"{steady['cpu_ms_per_check'] / result['floor']['paced_cpu_ms_per_request']:.2f}x",
            "—",
        ),
        (
            f"steady state: checks in the {steady['window_s']:.0f} s window",
            f"{steady['checks']:,} ({steady['not_checked_twice']} sources missed)",
            f"{n:,}",
        ),
        ("controller CPU, average over the window", f"{steady['cores']:.3f} cores", "< 0.5"),
        (
            "schedule lateness p50 / p99 / max (gap - 1m)",
            f"{steady['lateness_p50_s']:+.2f} / {steady['lateness_p99_s']:+.2f} / "
            f"{steady['lateness_max_s']:+.2f} s",
            f"p99 ≤ {jitter:g} + 2 s",
        ),
        (
            "whole machine busy (all processes): cold start / steady window",
            f"{cold['machine_cores_busy']:.2f} / {steady['machine_cores_busy']:.2f} cores",
            "of 2",
        ),
        ("RSS in steady state (filesystem backend)", f"{steady['rss_mib']:.0f} MiB", goal["rss"]),
    ]
    del floor
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--profile", type=pathlib.Path, help="py-spy output directory")
    parser.add_argument(
        "--controller-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="an extra flag for both controllers (repeat; e.g. --controller-flag=--concurrent=8)",
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="stop after the cold start (A); no table"
    )
    parser.add_argument(
        "--results", type=pathlib.Path, help="re-render the report of a run's printed JSON"
    )
    parser.add_argument("--serve-origin", nargs=2, metavar=("COUNT", "PORT_FILE"))
    parser.add_argument("--floor", nargs=3, metavar=("BASE", "COUNT", "TOTAL"))
    args = parser.parse_args()
    if args.serve_origin:
        serve_origin(int(args.serve_origin[0]), pathlib.Path(args.serve_origin[1]))
        return
    if args.floor:
        run_floor(args.floor[0], int(args.floor[1]), int(args.floor[2]))
        return
    if args.results:
        result = json.loads(args.results.read_text())
        args.sources = result["sources"]
    else:
        result = run(
            args.sources,
            profile=args.profile,
            flags=args.controller_flag,
            cold_only=args.cold_only,
        )
        print(json.dumps(result, indent=2))
        if args.cold_only:
            return
    print(table(result))
    if args.write_docs:
        command = f"python -m tests.bench.bench_scale --sources {args.sources} --write-docs"
        replace_section(
            f"Scale on a real API server, {args.sources:,} sources",
            f"{describe_machine()}\n\nRun: `{command}` (one run, every row from it).\n\n"
            f"{table(result)}\n\nWrites by request (per source): cold start "
            f"{_writes_text(result['cold_start']['writes'], args.sources)}; takeover "
            f"{_writes_text(result['takeover']['writes'], args.sources)}. Events: "
            f"{_writes_text(result['cold_start']['event_reasons'], args.sources)} "
            "(involved object kind, reason). Controller warnings: "
            f"{_writes_text(result['cold_start']['log_warnings'], 1)}.\n",
        )


if __name__ == "__main__":
    main()
