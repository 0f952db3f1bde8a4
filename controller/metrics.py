"""Reconcile metrics, named for the dashboards users already have.

`gotk_reconcile_duration_seconds{kind="ExternalSource"}` makes our sources
appear in Flux's stock Grafana dashboards; `externalsource_*` are ours. Series
that carry an object's name are removed when the object is deleted, so a
cluster that churns sources does not grow the registry forever.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

from controller.api.names import KIND

RECONCILE_TOTAL = Counter(
    "externalsource_reconcile_total",
    "Reconciles of ExternalSources by result "
    "(success, not_modified, error, stalled, suspended, deleted).",
    ["result"],
)
RECONCILE_DURATION = Histogram(
    "externalsource_reconcile_duration_seconds",
    "Duration of ExternalSource reconciles by result.",
    ["result"],
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)
GOTK_RECONCILE_DURATION = Histogram(
    "gotk_reconcile_duration_seconds",
    "The duration in seconds of a GitOps Toolkit resource reconciliation.",
    ["kind", "name", "namespace"],
    # Flux's own buckets (ExponentialBuckets(10e-3, 10, 5)): one series per source, so each
    # bucket costs memory at 10,000 sources
    buckets=(0.01, 0.1, 1, 10, 100),
)
SOURCE_READY = Gauge(
    "externalsource_ready",
    "1 when the ExternalSource is Ready, 0 otherwise.",
    ["namespace", "name"],
)
ARTIFACT_SIZE = Gauge(
    "externalsource_artifact_size_bytes",
    "Size of the published artifact of each ExternalSource.",
    ["namespace", "name"],
)


#: per-source histogram children, so the fast path looks a source up in one dict
#: instead of through `labels()` (label checks, a lock) on every check
_DURATIONS: dict[tuple[str, str], Histogram] = {}


@functools.cache
def _by_result(result: str) -> tuple[Counter, Histogram]:
    return RECONCILE_TOTAL.labels(result), RECONCILE_DURATION.labels(result)


def observe(*, namespace: str, name: str, result: str, seconds: float) -> None:
    total, duration = _by_result(result)
    total.inc()
    duration.observe(seconds)
    per_source = _DURATIONS.get((namespace, name))
    if per_source is None:
        per_source = GOTK_RECONCILE_DURATION.labels(KIND, name, namespace)
        _DURATIONS[namespace, name] = per_source
    per_source.observe(seconds)


def forget(*, namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted source."""
    _DURATIONS.pop((namespace, name), None)
    for metric, labels in (
        (GOTK_RECONCILE_DURATION, (KIND, name, namespace)),
        (SOURCE_READY, (namespace, name)),
        (ARTIFACT_SIZE, (namespace, name)),
    ):
        try:
            metric.remove(*labels)
        except KeyError:
            continue
