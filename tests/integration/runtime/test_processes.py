"""Two controller processes against one API emulator: one leads; SIGTERM and SIGKILL hand over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import sys
from collections.abc import AsyncIterator, Callable

from controller.runtime.leader import LEASE_PREFIX
from tests.harness import Emulator

ROOT = pathlib.Path(__file__).parents[3]
FLAGS = [
    "--enable-leader-election",
    "--leader-election-namespace=ctl",
    "--leader-election-lease-duration=3s",
    "--leader-election-renew-deadline=2s",
    "--leader-election-retry-period=200ms",
    "--graceful-shutdown-timeout=2s",
    "--health-addr=127.0.0.1:0",
    "--metrics-addr=127.0.0.1:0",
]
SOURCE = {
    "apiVersion": "source.flux.oddkin.co/v1alpha1",
    "kind": "ExternalSource",
    "metadata": {"name": "a", "namespace": "default"},
    "spec": {"interval": "1m", "generator": {"type": "http", "http": {"url": "http://x/"}}},
}


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode().strip())

    @property
    def reconciles(self) -> int:
        return sum(1 for line in self.lines if line.startswith("reconciled "))


@contextlib.asynccontextmanager
async def controllers(kubeconfig: pathlib.Path, count: int) -> AsyncIterator[list[Proc]]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)}
    procs = []
    try:
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.integration.runtime.controller_process",
                *FLAGS,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
            )
            procs.append(Proc(proc))
        yield procs
    finally:
        for p in procs:
            if p.proc.returncode is None:
                p.proc.kill()
            await p.proc.wait()
            await p.reader


async def eventually(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def holder(k8s: Emulator) -> str | None:
    lease = k8s.get_object("leases", "ctl", LEASE_PREFIX)
    return None if lease is None else lease["spec"].get("holderIdentity")


async def test_one_leader_sigterm_releases_and_exits_0_and_the_other_takes_over(
    k8s: Emulator, kubeconfig: pathlib.Path
) -> None:
    k8s.create_object("externalsources", SOURCE)
    async with controllers(kubeconfig, 2) as procs:
        await eventually(lambda: any(p.reconciles >= 5 for p in procs), timeout=30)
        leader = next(p for p in procs if p.reconciles)
        follower = next(p for p in procs if p is not leader)
        assert follower.reconciles == 0
        leader.proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(leader.proc.wait(), 10) == 0
        assert loop.time() - t0 < 2 + 3  # within the drain bound plus the release
        await eventually(lambda: follower.reconciles > 0, timeout=3)  # released: no 3 s expiry wait
        assert loop.time() - t0 < 3


async def test_a_killed_leader_is_replaced_after_the_lease_expires(
    k8s: Emulator, kubeconfig: pathlib.Path
) -> None:
    k8s.create_object("externalsources", SOURCE)
    async with controllers(kubeconfig, 2) as procs:
        await eventually(lambda: any(p.reconciles >= 3 for p in procs), timeout=30)
        leader = next(p for p in procs if p.reconciles)
        follower = next(p for p in procs if p is not leader)
        dead_holder = holder(k8s)
        leader.proc.kill()
        await leader.proc.wait()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await eventually(lambda: follower.reconciles > 0, timeout=10)
        assert loop.time() - t0 >= 2.5  # it waited for the 3 s lease to expire
        assert holder(k8s) not in (None, "", dead_holder)
