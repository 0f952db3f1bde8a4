"""Every panel query of the Grafana dashboard returns data from a real Prometheus.

Prometheus (the Debian binary) scrapes the controller's real metrics endpoint
(`controller.runtime.servers.metrics_app`, prometheus-client's default
registry) while the controller's components do real work in two rounds (so
every `rate()` sees an increase between scrapes): the HTTP generator fetches
from a real origin (modified, not modified, error), the workqueue adds,
retries and completes keys, the storage backend stores and serves an artifact,
the hook runner runs jq (success and failure), and the reconcile metrics
record a success and an error. Then each panel expression is evaluated through
Prometheus' HTTP API and must return at least one series with a finite value.
"""

from __future__ import annotations

import io
import json
import pathlib
import re

import pytest
import yaml

from controller import metrics as reconcile_metrics
from controller.runtime import metrics as runtime_metrics
from controller.runtime.leader import lease_name
from controller.runtime.manager import CONTROLLER_NAME
from controller.runtime.ratelimit import default_controller_limiter
from controller.runtime.servers import metrics_app, serving
from controller.runtime.workqueue import WorkQueue
from generators import registry
from generators.base import Fetched, FetchError, GeneratorSettings, NotModified, Validators
from generators.requests import HttpRequest
from hooks.executor import LocalExecutor
from hooks.runner import HookRunner
from hooks.spec import HookSpec, RetryBudget
from hooks.whitelist_manager import WhitelistManager
from storage.factory import create_backend
from storage.settings import StorageSettings
from tests.deploy.prometheus import Prometheus, finite_values, running_prometheus
from tests.deploy.rendering import CHART
from tests.fixtures.origin import OriginServer

DASHBOARD = CHART / "dashboards" / "externalsource-controller.json"
RATE_WINDOW = "1m"


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


class Controller:
    """The controller's components, doing real work that records metrics."""

    def __init__(self, origin: OriginServer, tmp_path: pathlib.Path) -> None:
        self.origin = origin
        settings = GeneratorSettings(spool_dir=str(tmp_path))
        self.generator = registry.create("http", settings)
        self.queue: WorkQueue[str] = WorkQueue(
            limiter=default_controller_limiter(min_delay=0.001, max_delay=0.01),
            name=CONTROLLER_NAME,
        )
        self.backend = create_backend(StorageSettings(storage_backend="memory"))
        values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
        whitelist_file = tmp_path / "whitelist.yaml"
        whitelist_file.write_text(yaml.safe_dump(values["hooks"]["whitelist"]), encoding="utf-8")
        whitelist = WhitelistManager(str(whitelist_file))
        assert whitelist.error is None, whitelist.error
        self.hooks = HookRunner(LocalExecutor(whitelist), whitelist)
        origin.set("/flags", body=b'{"a": [1, 2]}', etag='"v1"')

    async def reconcile_round(self) -> None:
        for key in ("apps/flags", "apps/broken"):
            self.queue.add(key)
        for _ in range(2):
            key = await self.queue.get()
            await self._reconcile(key)

    async def _reconcile(self, key: str) -> None:
        namespace, name = key.split("/")
        try:
            if name == "broken":
                await self.generator.fetch(HttpRequest(url=self.origin.url("/missing"), timeout=5))
            fetched = await self.generator.fetch(HttpRequest(url=self.origin.url("/flags")))
            assert isinstance(fetched, Fetched)
            with fetched:
                body = fetched.body.read()
            unchanged = await self.generator.fetch(
                HttpRequest(url=self.origin.url("/flags")), Validators(etag='"v1"')
            )
            assert isinstance(unchanged, NotModified)
            budget = RetryBudget(remaining=0)
            body = await self.hooks.run_post(
                body, [HookSpec(name="items", command="jq", args=("-c", ".a"))], budget
            )
            await self.hooks.run_post(
                body,
                [
                    HookSpec(
                        name="fails", command="jq", args=("-e", "error(1)"), retry_policy="ignore"
                    )
                ],
                budget,
            )
            size = await self.backend.put(
                f"externalsource/{namespace}/{name}/a.tar.gz", io.BytesIO(body)
            )
            async for _ in self.backend.open(f"externalsource/{namespace}/{name}/a.tar.gz"):
                pass
        except FetchError:
            reconcile_metrics.observe(namespace=namespace, name=name, result="error", seconds=0.3)
            reconcile_metrics.SOURCE_READY.labels(namespace, name).set(0)
            self.queue.add_rate_limited(key)
        else:
            reconcile_metrics.observe(
                namespace=namespace, name=name, result="success", seconds=0.02
            )
            reconcile_metrics.SOURCE_READY.labels(namespace, name).set(1)
            reconcile_metrics.ARTIFACT_SIZE.labels(namespace, name).set(size)
            self.queue.forget(key)
        finally:
            self.queue.done(key)

    async def aclose(self) -> None:
        self.queue.shutdown()
        await self.generator.aclose()
        await self.backend.aclose()


@pytest.mark.dashboard
async def test_every_panel_query_returns_data(origin: OriginServer, tmp_path: pathlib.Path) -> None:
    (tmp_path / "spool").mkdir()
    controller = Controller(origin, tmp_path / "spool")
    # what the leader elector sets when this replica holds the lease
    runtime_metrics.LEADER_STATUS.labels(name=lease_name("")).set(1)
    try:
        async with (
            serving(metrics_app(), "127.0.0.1:0") as port,
            running_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus,
        ):
            await controller.reconcile_round()
            await prometheus.wait_for_scrapes(2)
            await controller.reconcile_round()
            await prometheus.wait_for_scrapes(2)
            await assert_every_panel_has_data(prometheus)
    finally:
        await controller.aclose()


async def assert_every_panel_has_data(prometheus: Prometheus) -> None:
    empty: list[str] = []
    for title, expr in panel_queries():
        result = await prometheus.query(expr)
        if not finite_values(result):
            empty.append(f"{title}: {expr} -> {result}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_rate_window_matches_grafana_variable() -> None:
    dashboard = DASHBOARD.read_text(encoding="utf-8")
    assert re.search(r"\[\$__rate_interval\]", dashboard)
    assert not re.search(r"\[\d+[smh]\]", dashboard), "use $__rate_interval, not fixed windows"
