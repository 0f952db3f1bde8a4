"""Every panel query of the Grafana dashboard returns data from a real Prometheus
scraping a running controller.

The whole controller (Manager + wiring, `tests.integration.conftest.run_controller`)
runs against the Kubernetes API emulator with leader election on, the real hooks
sidecar and a real origin; Prometheus (the Debian binary) scrapes its
`--metrics-addr`. Nothing is recorded by hand: the traffic is what users cause.
Sources whose origin answers (with ETags), one whose origin answers 503 (errors
and workqueue retries), one whose jq post-request hook succeeds and one whose
hook fails; artifacts are downloaded like Flux does (storage `open`); an interval
elapses for an unchanged origin (HEAD answered 304 -> not_modified). Then, after
Prometheus has sampled that state, a second round: the interval elapses again,
the hooked origin changes and `reconcile.fluxcd.io/requestedAt` is set on its
sources (hooks run again, one new revision is published and downloaded) and one
source is deleted. Two rounds because `rate()` and `histogram_quantile()` need
an increase between two samples. Each panel expression is then evaluated
through Prometheus' HTTP API until every one returns a series with a finite
value (a positive one for expressions over `rate()`, so a panel that would only
draw a flat zero fails).

The controller runs in this process, so prometheus-client's default registry may
also hold series of controllers run earlier in the session. Rates cannot come
from those (their counters stand still while this Prometheus runs); the
per-source gauges are pinned to this test's sources by
`assert_series_are_this_controllers`.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
from typing import Any

import pytest

from controller.runtime.leader import lease_name
from tests.deploy.prometheus import Prometheus, finite_values, running_prometheus
from tests.deploy.rendering import CHART
from tests.fixtures.origin import OriginServer
from tests.fixtures.sidecar import SidecarProcess
from tests.harness import Emulator
from tests.integration.conftest import Controller, free_port, run_controller
from tests.integration.helpers import condition, download, ready, source

DASHBOARD = CHART / "dashboards" / "externalsource-controller.json"
RATE_WINDOW = "1m"
LEASE_NAMESPACE = "externalsource-system"
#: reached only when a panel never gets data (the happy path takes a few scrapes)
PANEL_DEADLINE = 30.0


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, Grafana variables resolved."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_WINDOW)
            assert "$" not in expr, f"unresolved variable in {panel['title']}: {expr}"
            queries.append((panel["title"], expr))
    return queries


def test_dashboard_covers_what_operators_need() -> None:
    text = " ".join(expr for _, expr in panel_queries())
    for metric in (
        "externalsource_reconcile_total",
        "externalsource_reconcile_duration_seconds_bucket",
        "externalsource_source_request_duration_seconds_bucket",
        'outcome="not_modified"',
        "workqueue_depth",
        "workqueue_queue_duration_seconds_bucket",
        "externalsource_hook_executions_total",
        "externalsource_artifact_size_bytes",
        "externalsource_storage_operation_duration_seconds_bucket",
        "leader_election_master_status",
    ):
        assert metric in text, metric


def hooked(name: str, url: str, jq_filter: str) -> dict[str, Any]:
    """A source whose post-request hook is jq with this filter (run by the sidecar)."""
    hook = {"name": "jq", "command": "jq", "args": ["-c", jq_filter]}
    return source(name, url, hooks={"postRequest": [hook]})


def failing(ctl: Controller, name: str) -> Any:
    return lambda: (c := condition(ctl.source(name), "Ready")) and c["status"] == "False" and c


def revision(ctl: Controller, name: str) -> str | None:
    artifact = ((ctl.source(name) or {}).get("status") or {}).get("artifact") or {}
    return artifact.get("revision")


async def fetch_artifact(ctl: Controller, name: str) -> None:
    """Download the published artifact the way Flux's source watcher does."""
    artifact = ctl.source(name)["status"]["artifact"]  # type: ignore[index]
    status, _ = await download(artifact["url"])
    assert status == 200, (name, status)


def request_reconcile(ctl: Controller, name: str, token: str) -> None:
    """What `flux reconcile` does: the controller reconciles now, whatever the interval."""
    ctl.patch(name, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}})


async def interval_elapses(ctl: Controller, origin: OriginServer, name: str, path: str) -> None:
    """What the interval timer does (`ctl.enqueue`; the CRD's shortest interval is 1m), until
    the controller has asked the origin whether `path` changed (a HEAD with the ETag)."""
    asked = len(conditional_heads(origin, path))
    ctl.enqueue(name)
    await ctl.wait_for(lambda: len(conditional_heads(origin, path)) > asked)


def conditional_heads(origin: OriginServer, path: str) -> list[Any]:
    return [
        r for r in origin.requests_for(path) if r.method == "HEAD" and "If-None-Match" in r.headers
    ]


async def first_round(ctl: Controller, origin: OriginServer) -> None:
    """Sources that succeed, one whose origin is down, one hook that succeeds, one that fails."""
    origin.set("/flags", body=b'{"a": [1, 2]}', etag='"v1"')
    origin.set("/items", body=b'{"a": [1, 2]}', etag='"v1"')
    origin.set("/gone", body=b'{"b": 1}', etag='"v1"')
    origin.set("/down", body=b"{}", etag='"v1"')
    origin.mode("/down", status=503)
    ctl.create(source("dash-flags", origin.url("/flags")))
    ctl.create(source("dash-gone", origin.url("/gone")))
    ctl.create(source("dash-down", origin.url("/down")))
    ctl.create(hooked("dash-hooked", origin.url("/items"), ".a"))
    # `.a.b` indexes an array: jq exits non-zero, so the hook fails
    ctl.create(hooked("dash-hook-fails", origin.url("/items"), ".a.b"))
    for name in ("dash-flags", "dash-gone", "dash-hooked"):
        await ctl.wait_for(ready(ctl, name), timeout=20)
        await fetch_artifact(ctl, name)
    # a not_modified already now, so the second round's ones show as an increase
    await interval_elapses(ctl, origin, "dash-flags", "/flags")
    for name in ("dash-down", "dash-hook-fails"):
        await ctl.wait_for(failing(ctl, name), timeout=20)


async def second_round(ctl: Controller, origin: OriginServer) -> None:
    """An unchanged origin (not_modified), new content through both hooks, a deletion."""
    before = revision(ctl, "dash-hooked")
    origin.set("/items", body=b'{"a": [3]}', etag='"v2"')
    for name in ("dash-hooked", "dash-hook-fails"):
        request_reconcile(ctl, name, "round-2")
    ctl.delete("dash-gone")
    await interval_elapses(ctl, origin, "dash-flags", "/flags")
    await ctl.wait_for(lambda: revision(ctl, "dash-hooked") not in (None, before), timeout=20)
    await fetch_artifact(ctl, "dash-hooked")
    await ctl.wait_for(lambda: ctl.source("dash-gone") is None, timeout=20)


@pytest.mark.dashboard
async def test_every_panel_query_returns_data(
    k8s: Emulator, origin: OriginServer, hooks_sidecar: SidecarProcess, tmp_path: pathlib.Path
) -> None:
    flags = (
        "--enable-leader-election",
        f"--leader-election-namespace={LEASE_NAMESPACE}",
        "--min-retry-delay=200ms",
        "--max-retry-delay=2s",
        f"--hooks-whitelist={hooks_sidecar.whitelist_path}",
        f"--hooks-endpoint={hooks_sidecar.url}",
        f"--hooks-token-file={hooks_sidecar.token_file}",
    )
    async with run_controller(k8s, *flags, port=free_port()) as ctl:
        target = f"127.0.0.1:{ctl.manager.metrics_port}"
        async with running_prometheus(tmp_path, [target]) as prometheus:
            await first_round(ctl, origin)
            await prometheus.wait_for_scrapes(2)
            await second_round(ctl, origin)
            results = await every_panel_with_data(prometheus)
    assert_series_are_this_controllers(results, target)


def shows_data(expr: str, result: list[dict[str, Any]]) -> bool:
    """A finite value; for a rate, a positive one (the panel shows activity, not a flat 0)."""
    values = finite_values(result)
    if "rate(" in expr:
        return any(v > 0 for v in values)
    return bool(values)


async def every_panel_with_data(prometheus: Prometheus) -> dict[str, list[dict[str, Any]]]:
    """Evaluate every panel once per scrape until all show data; fail naming the empty ones."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PANEL_DEADLINE
    while True:
        results: dict[str, list[dict[str, Any]]] = {}
        empty: list[str] = []
        for title, expr in panel_queries():
            result = await prometheus.query(expr)
            results[f"{title}: {expr}"] = result
            if not shows_data(expr, result):
                empty.append(f"{title}: {expr} -> {result}")
        if not empty:
            return results
        assert loop.time() < deadline, "panels without data:\n" + "\n".join(empty)
        await prometheus.wait_for_scrapes(1)


def assert_series_are_this_controllers(
    results: dict[str, list[dict[str, Any]]], target: str
) -> None:
    """The per-source and leader panels show this test's sources and this controller's lease."""

    def labels(title: str, label: str) -> set[str]:
        found = [r for key, r in results.items() if key.startswith(f"{title}: ")]
        return {s["metric"].get(label, "") for r in found for s in r}

    assert {"dash-down", "dash-hook-fails"} <= labels("Sources not ready", "name")
    assert {"dash-flags", "dash-hooked"} <= labels("Largest artifacts", "name")
    assert "dash-gone" not in labels("Largest artifacts", "name")
    assert labels("Leader", "name") == {lease_name("")}
    assert labels("Leader", "instance") == {target}


def test_rate_window_matches_grafana_variable() -> None:
    dashboard = DASHBOARD.read_text(encoding="utf-8")
    assert re.search(r"\[\$__rate_interval\]", dashboard)
    assert not re.search(r"\[\d+[smh]\]", dashboard), "use $__rate_interval, not fixed windows"
