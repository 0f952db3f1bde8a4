"""Faults of the Kubernetes API itself (403 RBAC, 429 throttling, 5xx), injected on the emulator
(a real API server cannot be told to answer 403 or 429 on one request): they are retried with
backoff, never flip Ready, never write a failure status, and never end the process."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import NS, Controller


def _source(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"interval": "5m", "generator": {"type": "http", "http": {"url": url}}},
    }


def _ready(ctl: Controller, name: str) -> dict[str, Any] | None:
    for cond in ((ctl.source(name) or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == "Ready":
            return dict(cond)
    return None


def _revision(ctl: Controller, name: str) -> str | None:
    artifact = ((ctl.source(name) or {}).get("status") or {}).get("artifact") or {}
    return artifact.get("revision")


async def test_a_403_is_retried_without_touching_ready_and_names_the_missing_permission(
    controller: Controller, origin: Any, capsys: Any
) -> None:
    origin.set("/f", body=b"1", etag='"1"')
    controller.create(_source("rbac", origin.url("/f")))
    await controller.wait_for(lambda: (_ready(controller, "rbac") or {}).get("status") == "True")
    first = _revision(controller, "rbac")
    await controller.idle()
    controller.api.clear_log()

    controller.api.inject_error(
        403, verb="patch", resource="externalartifacts", subresource="status", times=2
    )
    origin.set("/f", body=b"2", etag='"2"')
    controller.enqueue("rbac")
    await controller.wait_for(lambda: _revision(controller, "rbac") not in (None, first))

    failed = [w for w in controller.api.writes() if w.status == 403]
    assert failed  # refused, retried with backoff, then published
    statuses = [
        w.body["status"]
        for w in controller.api.writes()
        if w.resource == "externalsources" and w.subresource == "status"
    ]
    for status in statuses:  # no failure was written while the API refused us
        for cond in status.get("conditions") or ():
            assert not (cond["type"] == "Ready" and cond["status"] == "False")
    assert (_ready(controller, "rbac") or {})["status"] == "True"
    logged = capsys.readouterr().out
    assert "patch ExternalArtifact/status" in logged
    assert "RBAC" in logged


async def test_a_429_waits_for_retry_after_and_writes_no_status_meanwhile(
    controller: Controller, origin: Any
) -> None:
    origin.set("/t", body=b"1", etag='"1"')
    controller.api.inject_error(
        429, verb="patch", resource="externalsources", subresource="status", retry_after=2
    )
    controller.create(_source("throttled", origin.url("/t")))
    await controller.wait_for(
        lambda: (_ready(controller, "throttled") or {}).get("status") == "True", timeout=15
    )
    attempts = [
        w
        for w in controller.api.writes()
        if w.resource == "externalsources" and w.subresource == "status"
    ]
    assert [w.status for w in attempts] == [429, 200]
    assert attempts[1].time - attempts[0].time >= 2.0  # Retry-After honoured
