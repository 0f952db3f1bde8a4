"""structlog set-up and the reconcile-scoped log context.

JSON lines when stderr is not a terminal (in a pod), a readable console format
on a terminal; `--log-encoding` overrides. Standard-library loggers (aiohttp,
kr8s, httpx) go through the same renderer so a pod's output is uniformly
JSON. The reconcile's context lives in a context variable, so every line
emitted while a reconcile runs (in our code or a leaf room's) carries
`namespace`, `name` and `reconcile_id` without passing a logger around. The last step
before rendering scrubs the values of the Secrets the current reconcile read
(`controller.redaction`), in our lines and in foreign libraries' alike,
exception text included in JSON mode.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import structlog

from controller import redaction

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def setup_logging(
    *, level: str = "info", encoding: str | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger; `encoding=None` picks by TTY."""
    out = stream or sys.stderr
    if encoding is None:
        encoding = "console" if out.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _merge_reconcile,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if encoding == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        # the level check first: a filtered-out debug line on the fast path costs nothing more
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=_BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if encoding == "json" else _identity,
            redaction.structlog_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # chatty per-request loggers of our transports stay at warning unless debugging
    for name in ("httpx", "httpcore", "aiohttp.access", "kr8s"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


#: reconcile ids: unique enough to tell reconciles apart in logs, no system call per id
_ids = random.Random()  # noqa: S311 - not a secret


class _BoundLogger(structlog.stdlib.BoundLogger):
    """A `debug` call returns at once when debug is off: the fast path has a few, and each
    would otherwise go through structlog's processor chain just to be dropped."""

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if not self._logger.isEnabledFor(logging.DEBUG):
            return None
        return super().debug(event, *args, **kw)


def _identity(_: Any, __: str, event_dict: Any) -> Any:
    return event_dict


#: (namespace, name, reconcile_id) of the reconcile running in this task: one context
#: variable set per reconcile instead of three through structlog's bound_contextvars
_RECONCILE: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "externalsource_reconcile", default=None
)


def _merge_reconcile(_: Any, __: str, event_dict: Any) -> Any:
    current = _RECONCILE.get()
    if current is not None:
        event_dict.setdefault("namespace", current[0])
        event_dict.setdefault("name", current[1])
        event_dict.setdefault("reconcile_id", current[2])
    return event_dict


@contextlib.contextmanager
def reconcile_context(namespace: str, name: str) -> Iterator[str]:
    """Bind namespace, name and a fresh reconcile_id to every log line inside; yield the id."""
    reconcile_id = f"{_ids.getrandbits(48):012x}"
    token = _RECONCILE.set((namespace, name, reconcile_id))
    try:
        yield reconcile_id
    finally:
        _RECONCILE.reset(token)
