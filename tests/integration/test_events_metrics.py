"""What users see around a reconcile: events (Kubernetes and Flux's notification format),
metrics series and the ArtifactConflict refusal."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from controller.api.names import FINALIZER
from controller.events import EventRecorder
from controller.fetchrequest import ApiSecretReader
from controller.publishing import Retention
from controller.reconciler import Collaborators, Reconciler, ReconcilerSettings
from controller.runtime.keys import ObjectKey
from controller.runtime.kube import connect
from controller.runtime.worker import Result
from hooks.executor import LocalExecutor
from hooks.runner import HookRunner
from hooks.whitelist import Whitelist
from storage.memory import MemoryBackend
from tests.integration.conftest import NS, run_controller
from tests.integration.helpers import condition, ready, source, status


def events(k8s: Any, reason: str) -> list[dict[str, Any]]:
    return [e for e in k8s.list_objects("v1/events", NS) if e["reason"] == reason]


async def test_new_artifact_events_reach_kubernetes_and_flux(
    k8s: Any, origin: Any, notification_receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    """One Kubernetes Event per new artifact (on the source, what `kubectl describe` shows);
    Flux's notification-controller hears about the source and the ExternalArtifact, the kind
    its Alerts can select."""
    url, received = notification_receiver
    origin.set("/flags", body=b"{}", etag='"v1"')
    async with run_controller(k8s, f"--events-addr={url}") as ctl:
        ctl.create(source("flags", origin.url("/flags")))
        await ctl.wait_for(ready(ctl, "flags"))
        revision = status(ctl, "flags")["artifact"]["revision"]
        await ctl.wait_for(lambda: len(received) == 2)
        await ctl.idle()
    kinds = [e["involvedObject"]["kind"] for e in events(k8s, "NewArtifact")]
    assert kinds == ["ExternalSource"]
    assert all(revision in e["message"] for e in events(k8s, "NewArtifact"))
    assert {e["involvedObject"]["kind"] for e in received} == {"ExternalSource", "ExternalArtifact"}
    assert all(e["severity"] == "info" and e["reason"] == "NewArtifact" for e in received)
    assert all(e["metadata"]["revision"] == revision for e in received)


async def test_a_repeated_failure_is_one_warning_not_one_per_retry(k8s: Any, origin: Any) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    origin.mode("/flags", status=503)
    async with run_controller(k8s, "--min-retry-delay=50ms") as ctl:
        ctl.create(source("flags", origin.url("/flags")))
        await ctl.wait_for(lambda: len(origin.requests_for("/flags")) >= 4)
        failed = condition(ctl.source("flags"), "Ready")
    assert failed is not None
    assert failed["status"] == "False"
    warnings = [e for e in k8s.list_objects("v1/events", NS) if e["type"] == "Warning"]
    assert len(warnings) == 1
    assert "503" in warnings[0]["message"]


async def test_a_deleted_source_leaves_no_metric_series(k8s: Any, origin: Any) -> None:
    origin.set("/gone", body=b"{}", etag='"v1"')
    labels = {"kind": "ExternalSource", "name": "gone", "namespace": NS}
    async with run_controller(k8s) as ctl:
        ctl.create(source("gone", origin.url("/gone")))
        await ctl.wait_for(ready(ctl, "gone"))
        await ctl.idle()  # metrics are observed when the reconcile returns
        assert REGISTRY.get_sample_value("gotk_reconcile_duration_seconds_count", labels)
        assert (
            REGISTRY.get_sample_value("externalsource_ready", {"namespace": NS, "name": "gone"})
            == 1
        )
        ctl.delete("gone")
        await ctl.wait_for(lambda: ctl.source("gone") is None)
        await ctl.idle()
    assert REGISTRY.get_sample_value("gotk_reconcile_duration_seconds_count", labels) is None
    assert (
        REGISTRY.get_sample_value("externalsource_ready", {"namespace": NS, "name": "gone"}) is None
    )


async def test_a_foreign_external_artifact_is_left_alone(k8s: Any, origin: Any) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    foreign = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "ExternalArtifact",
        "metadata": {"name": "taken", "namespace": NS, "labels": {"owner": "someone-else"}},
        "spec": {"sourceRef": {"kind": "Other", "name": "x"}},
    }
    k8s.create_object("externalartifacts", foreign)
    async with run_controller(k8s) as ctl:
        ctl.create(source("taken", origin.url("/flags")))
        refused = await ctl.wait_for(
            lambda: (
                (c := condition(ctl.source("taken"), "Ready"))
                and c["reason"] == "ArtifactConflict"
                and c
            )
        )
        assert refused["status"] == "False"
        ea = ctl.artifact("taken")
    assert ea is not None
    assert ea["spec"] == foreign["spec"]
    assert ea["metadata"]["labels"] == {"owner": "someone-else"}
    assert not ea["metadata"].get("ownerReferences")
    assert "status" not in ea or not ea["status"].get("artifact")


async def test_a_stale_cache_entry_of_a_deleted_source_ends_quietly(
    k8s: Any, kubeconfig: Any
) -> None:
    """The watch lags: the cache still shows a deleting source the API server already removed."""
    stale = source("gone", "http://127.0.0.1:9/unused")
    stale["metadata"] |= {
        "uid": "0a0a0a0a",
        "resourceVersion": "1",
        "deletionTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": [FINALIZER],
    }
    kube = await connect(kubeconfig=str(kubeconfig))
    parts = Collaborators(
        kube=kube,
        sources=lambda key: stale,
        artifacts=lambda key: None,
        secrets=ApiSecretReader(kube),
        generators={},
        runner=HookRunner(LocalExecutor(Whitelist(commands={})), None),
        storage=MemoryBackend(),
        events=EventRecorder(kube),
    )
    settings = ReconcilerSettings(retention=Retention(advertised_address="localhost:9090"))
    reconciler = Reconciler(parts, settings)
    try:
        result = await reconciler.reconcile(ObjectKey(NS, "gone"))
    finally:
        await kube.aclose()
    assert result == Result()
    assert k8s.get_object("externalsources", NS, "gone") is None
