"""Prometheus series of the runtime, named as controller-runtime names them.

Dashboards and alerts written for Go controllers (`workqueue_*`,
`controller_runtime_*`, `leader_election_master_status`) work unchanged. All
series live in prometheus-client's default REGISTRY, which `/metrics` serves.
Histogram buckets are controller-runtime's (`ExponentialBuckets(1e-8, 10, 12)`
for the queue, its reconcile-time buckets for reconciles).

`QueueMetrics` is the workqueue's view: it records add/get/done times so that
the two "unfinished work" gauges are computed at scrape time from the keys
currently being processed, like client-go's `updateUnfinishedWork`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from prometheus_client import Counter, Gauge, Histogram

_QUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
_RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
    0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8,
    9, 10, 15, 20, 25, 30, 40, 50, 60,
)  # fmt: skip
_QUEUE_LABELS = ("name", "controller")

WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", _QUEUE_LABELS)
WORKQUEUE_ADDS = Counter(
    "workqueue_adds", "Total number of adds handled by workqueue", _QUEUE_LABELS
)
WORKQUEUE_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested",
    _QUEUE_LABELS,
    buckets=_QUEUE_BUCKETS,
)
WORKQUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes",
    _QUEUE_LABELS,
    buckets=_QUEUE_BUCKETS,
)
WORKQUEUE_UNFINISHED_WORK = Gauge(
    "workqueue_unfinished_work_seconds",
    "How many seconds of work has been done that is in progress and hasn't been observed "
    "by work_duration",
    _QUEUE_LABELS,
)
WORKQUEUE_LONGEST_RUNNING = Gauge(
    "workqueue_longest_running_processor_seconds",
    "How many seconds has the longest running processor for workqueue been running",
    _QUEUE_LABELS,
)
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries", "Total number of retries handled by workqueue", _QUEUE_LABELS
)

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile",
    "Total number of reconciliations per controller",
    ("controller", "result"),
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors",
    "Total number of reconciliation errors per controller",
    ("controller",),
)
RECONCILE_PANICS = Counter(
    "controller_runtime_reconcile_panics",
    "Total number of reconciliation panics (unexpected exceptions) per controller",
    ("controller",),
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller",
    ("controller",),
    buckets=_RECONCILE_BUCKETS,
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller",
    ("controller",),
)
MAX_CONCURRENT_RECONCILES = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ("controller",),
)
LEADER_STATUS = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
    "1 indicates master. 'name' is the string used to identify the lease.",
    ("name",),
)

REST_CLIENT_REQUESTS = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests to the Kubernetes API, partitioned by status code and method.",
    ("code", "method"),
)


class QueueMetrics:
    """One workqueue's series; timestamps use a monotonic wall clock like client-go."""

    def __init__(self, *, name: str, controller: str, depth: Callable[[], int]) -> None:
        labels = {"name": name, "controller": controller}
        # read at scrape time (like the two below): no gauge update on every add and get
        WORKQUEUE_DEPTH.labels(**labels).set_function(depth)
        self._adds = WORKQUEUE_ADDS.labels(**labels)
        self._queue_duration = WORKQUEUE_QUEUE_DURATION.labels(**labels)
        self._work_duration = WORKQUEUE_WORK_DURATION.labels(**labels)
        self._retries = WORKQUEUE_RETRIES.labels(**labels)
        self._added_at: dict[Hashable, float] = {}
        self._started_at: dict[Hashable, float] = {}
        WORKQUEUE_UNFINISHED_WORK.labels(**labels).set_function(self.unfinished_work)
        WORKQUEUE_LONGEST_RUNNING.labels(**labels).set_function(self.longest_running)

    def added(self, key: Hashable) -> None:
        """A key became dirty; like client-go, depth counts it even while it is processing."""
        self._adds.inc()
        self._added_at.setdefault(key, time.monotonic())

    def got(self, key: Hashable) -> None:
        now = time.monotonic()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._queue_duration.observe(now - added)
        self._started_at[key] = now

    def done(self, key: Hashable) -> None:
        started = self._started_at.pop(key, None)
        if started is not None:
            self._work_duration.observe(time.monotonic() - started)

    def retried(self) -> None:
        self._retries.inc()

    def unfinished_work(self) -> float:
        now = time.monotonic()
        return sum(now - t for t in self._started_at.values())

    def longest_running(self) -> float:
        now = time.monotonic()
        return max((now - t for t in self._started_at.values()), default=0.0)
