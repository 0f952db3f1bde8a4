"""Fetch latency and outcome metrics, recorded for every generator in one place.

`InstrumentedGenerator` wraps whatever a factory builds, and `registry.create`
always returns the wrapper, so a new generator gets
`externalsource_source_requests_total{generator,outcome}` and
`externalsource_source_request_duration_seconds{generator,outcome}` without a
line of its own. Outcomes: `modified` (a body), `not_modified`, `error`.
A cancelled fetch (shutdown, deadline of the caller) is not an outcome of the
origin and is not recorded.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client import Counter, Histogram

from generators.base import FetchResult, NotModified, SourceGenerator, Validators

REQUESTS = Counter(
    "externalsource_source_requests_total",
    "Fetches from external sources by generator type and outcome.",
    ["generator", "outcome"],
)
DURATION = Histogram(
    "externalsource_source_request_duration_seconds",
    "Duration of fetches from external sources by generator type and outcome.",
    ["generator", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


class InstrumentedGenerator(SourceGenerator):
    """Delegates to `inner` and records one sample per fetch."""

    def __init__(self, inner: SourceGenerator) -> None:
        self.inner = inner
        self.type_name = inner.type_name
        self.supports_conditional_fetch = inner.supports_conditional_fetch

    async def fetch(self, config: Any, previous: Validators | None = None) -> FetchResult:
        started = time.perf_counter()
        try:
            result = await self.inner.fetch(config, previous)
        except Exception:
            self._record("error", started)
            raise
        self._record("not_modified" if isinstance(result, NotModified) else "modified", started)
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _record(self, outcome: str, started: float) -> None:
        requests, duration = _series(self.type_name, outcome)
        requests.inc()
        duration.observe(time.perf_counter() - started)


@functools.cache
def _series(type_name: str, outcome: str) -> tuple[Counter, Histogram]:
    """The children of one (type, outcome), looked up once, not on every fetch."""
    return REQUESTS.labels(type_name, outcome), DURATION.labels(type_name, outcome)
