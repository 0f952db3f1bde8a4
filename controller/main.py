"""`externalsource-controller`: configuration, logging, Kubernetes clients, the Manager.

The order matters: configuration is parsed and validated before anything
else (a bad value exits 2 with one line), logging is set up before the first
log line, then the Kubernetes clients and the Manager. The reconciler side is
plugged in by `controller.wiring.build(config, manager)`, an async context
manager yielding a `Wiring` (reconcile callable, leader-only services,
readiness checks) and closing what it opened on the way out.

SIGTERM and SIGINT start the Manager's graceful stop; a clean stop exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

from controller.config import PROG, Config, ConfigError, load_config
from controller.logging import setup_logging
from controller.runtime.kube import KubeApis
from controller.runtime.manager import Manager, StartupError, Wiring

#: `controller.wiring.build`'s shape: (config, manager) -> async context manager of Wiring
Build = Callable[[Config, Manager], contextlib.AbstractAsyncContextManager[Wiring]]


def main(argv: Sequence[str] | None = None, *, build: Build | None = None) -> None:
    """The console script; `build` replaces `controller.wiring.build` (process tests)."""
    environ = dict(os.environ)
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, environ)
    except ConfigError as exc:
        print(f"{PROG}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(level=config.controller.log_level, encoding=config.controller.log_encoding)
    try:
        asyncio.run(run(config, environ, build=build))
    except StartupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        sys.exit(2)


async def run(config: Config, environ: Mapping[str, str], *, build: Build | None = None) -> None:
    """Run the controller until SIGTERM/SIGINT."""
    if build is None:
        from controller import wiring  # noqa: PLC0415 - the heavy reconciler side; --help stays fast

        build = wiring.build

    settings = config.controller
    apis = await KubeApis.connect(
        qps=settings.kube_api_qps, burst=settings.kube_api_burst, environ=environ
    )
    try:
        manager = Manager(settings=settings, apis=apis, environ=environ)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, manager.stop)
        async with build(config, manager) as wired:
            await manager.run(wired)
    finally:
        await apis.aclose()
