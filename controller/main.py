"""`externalsource-controller`: configuration, logging, Kubernetes clients, the Manager.

The order matters: configuration is parsed and validated before anything
else (a bad value exits 2 with one line), logging is set up before the first
log line, then the Kubernetes clients and the Manager. The reconciler side is
plugged in by `controller.wiring.build(config, manager)`, an async context
manager yielding a `Wiring` (reconcile callable, leader-only services,
readiness checks) and closing what it opened on the way out.

SIGTERM and SIGINT start the Manager's graceful stop; a clean stop exits 0.

kr8s warns (`UserWarning` on stderr) whenever the API server's minor version
is outside the range kr8s was tested with, once per client, at every start-up.
The controller's own API use is covered by its e2e tests on the version it
ships for, so that warning is turned into one info log line instead of noise
every user sees (`_route_kr8s_version_warning`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import TextIO

import structlog

from controller.config import PROG, Config, ConfigError, load_config
from controller.logging import setup_logging
from controller.runtime.client import CredentialsError
from controller.runtime.kube import KubeApis
from controller.runtime.manager import Manager, StartupError

log = structlog.get_logger(__name__)

_KR8S_VERSION_WARNING = re.compile(r"Kubernetes version (\S+) is not supported")


def _route_kr8s_version_warning() -> None:
    """kr8s's "Kubernetes version ... is not supported" as one info line; others as usual."""
    show = warnings.showwarning
    logged = False

    def showwarning(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        nonlocal logged
        match = _KR8S_VERSION_WARNING.search(str(message))
        if match is None or not issubclass(category, UserWarning):
            show(message, category, filename, lineno, file, line)
            return
        if not logged:
            logged = True
            log.info("kubernetes version outside the range kr8s is tested with", version=match[1])

    warnings.showwarning = showwarning


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    environ = dict(os.environ)
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, environ)
    except ConfigError as exc:
        print(f"{PROG}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(level=config.controller.log_level, encoding=config.controller.log_encoding)
    _route_kr8s_version_warning()
    try:
        asyncio.run(run(config, environ))
    except (StartupError, CredentialsError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        sys.exit(2)


async def run(config: Config, environ: Mapping[str, str]) -> None:
    """Run the controller until SIGTERM/SIGINT."""
    from controller import wiring  # noqa: PLC0415 - the heavy reconciler side; --help stays fast

    settings = config.controller
    apis = await KubeApis.connect(
        qps=settings.kube_api_qps, burst=settings.kube_api_burst, environ=environ
    )
    try:
        manager = Manager(settings=settings, apis=apis, environ=environ)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, manager.stop)
        async with wiring.build(config, manager) as wired:
            await manager.run(wired)
    finally:
        await apis.aclose()
