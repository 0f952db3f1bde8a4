"""Benchmark: cold start and fast-path reconciles (docs/benchmarks.md).

The API server and the origin run in a child process, so the CPU time measured
here is the controller's own (this process). Steps:

1. N ExternalSources exist before the controller starts; time until all are Ready
   (cold start, with default flags).
2. Rounds of "every source is due": all keys enqueued at once (what the interval
   timers do), the origin answers every HEAD "not modified". Reported: fast-path
   reconciles per second of wall time, controller CPU per reconcile, and the API
   writes the child counted during the rounds (must be zero).

    python -m tests.bench.bench_fastpath [--sources 1000] [--rounds 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import types
from typing import Any

from controller.logging import setup_logging
from tests.bench.machine import describe_machine, replace_section
from tests.fixtures.origin import OriginServer
from tests.harness import run_emulator
from tests.integration.conftest import NS, run_controller


async def serve(count: int) -> None:
    """Child: API emulator + origin; commands on stdin ("writes", "clear"), answers on stdout."""
    origin = OriginServer()
    await origin.start()
    origin.set("/data", body=b'{"flags": {"beta": true}}', etag='"v1"')
    async with run_emulator() as api:
        for i in range(count):
            api.create_object(
                "externalsources",
                {
                    "apiVersion": "source.flux.oddkin.co/v1alpha1",
                    "kind": "ExternalSource",
                    "metadata": {"name": f"s{i}", "namespace": NS},
                    "spec": {
                        "interval": "10m",
                        "generator": {"type": "http", "http": {"url": origin.url("/data")}},
                    },
                },
            )
        print(json.dumps({"url": str(api.url)}), flush=True)
        trimmer = asyncio.create_task(trim_history(api))
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"writes":
                print(json.dumps({"writes": len(api.writes())}), flush=True)
            elif line.strip() == b"clear":
                api.clear_log()
                print(json.dumps({"ok": True}), flush=True)
        trimmer.cancel()
    await origin.close()


async def trim_history(api: Any) -> None:
    """kmock keeps every request and re-filters that whole history for each new request
    (O(n²) over a run); at thousands of sources that, not the controller, would be measured.
    Only our own request log (`writes()`) is needed, so kmock's history is trimmed."""
    while True:
        await asyncio.sleep(0.2)
        del api._requests[:-50]


class Peer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin
        assert self.proc.stdout
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return dict(json.loads(await self.proc.stdout.readline()))


def ready(obj: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


async def measure(count: int, rounds: int) -> dict[str, float]:
    setup_logging(level="error", encoding="json")  # what a production pod logs on this path
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.bench_fastpath",
        "--serve",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    peer = Peer(proc)
    assert proc.stdout
    url = json.loads(await proc.stdout.readline())["url"]
    started, cpu_started = time.perf_counter(), time.process_time()
    remote = types.SimpleNamespace(url=url)  # the emulator runs in the child process
    async with run_controller(remote, "--log-level=error") as ctl:  # type: ignore[arg-type]
        sources = ctl.manager.sources
        await ctl.wait_for(
            lambda: (
                sources.has_synced
                and len(sources.list()) == count
                and all(ready(o) for o in sources.list())
            ),
            timeout=600,
        )
        cold = time.perf_counter() - started
        cold_cpu = time.process_time() - cpu_started
        await ctl.idle()
        await peer.ask("clear")
        keys = [(NS, f"s{i}") for i in range(count)]
        wall = cpu = 0.0
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            for key in keys:
                ctl.manager.queue.add(key)  # type: ignore[arg-type]
            await ctl.idle()
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        writes = (await peer.ask("writes"))["writes"]
    proc.stdin.close()  # type: ignore[union-attr]
    await proc.wait()
    total = count * rounds
    return {
        "sources": count,
        "cold_start_s": cold,
        "cold_start_controller_cpu_s": cold_cpu,
        "reconciles_per_s": total / wall,
        "cpu_ms_per_reconcile": cpu / total * 1000,
        "api_writes_during_fast_path": writes,
    }


NOTES = """Reading the numbers:

- Fast path: every reconcile is one HEAD to the origin answered "not modified" and
  no Kubernetes API call at all (the write count above is the API server's own log).
  Throughput is well above the target; CPU per reconcile is not yet at the 0.15 ms
  target: the aiohttp HEAD round trip is most of it (see `bench_runtime` for the
  runtime's share, about 0.02 ms).
- Cold start here is bound by the test API server, not by the controller: the
  kmock-based emulator validates every write against the CRD's schema and CEL rules in
  Python, in one process shared with the origin. The controller's own CPU for the
  whole cold start is reported beside it (about 20 ms per new source: eight API
  calls through kr8s/httpx — finalizer, progress status, ExternalArtifact get, create
  and status, final status, two NewArtifact events). Against a real kube-apiserver the
  8 s target for 1,000 sources still has to be measured."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return
    result = asyncio.run(measure(args.sources, args.rounds))
    print(json.dumps(result, indent=2))
    if args.write_docs:
        table = "\n".join(
            [
                "| measure | result | target |",
                "|---|---:|---|",
                f"| cold start: {result['sources']} sources all Ready | "
                f"{result['cold_start_s']:.2f} s | < 8 s for 1,000 |",
                "| controller CPU during that cold start | "
                f"{result['cold_start_controller_cpu_s']:.2f} s | — |",
                "| fast-path reconciles per second (wall) | "
                f"{result['reconciles_per_s']:.0f} | ≥ 500 |",
                f"| controller CPU per fast-path reconcile | "
                f"{result['cpu_ms_per_reconcile']:.3f} ms | ≤ 0.15 ms |",
                "| API writes during fast-path rounds | "
                f"{result['api_writes_during_fast_path']} | 0 |",
            ]
        )
        replace_section(
            "Reconciler fast path",
            f"{describe_machine()}\n\n"
            "Run: `python -m tests.bench.bench_fastpath "
            f"--sources {args.sources} --rounds {args.rounds} --write-docs`. "
            "API server and origin run in a child process; CPU is "
            f"the controller process's own.\n\n{table}\n\n{NOTES}\n",
        )


if __name__ == "__main__":
    main()
