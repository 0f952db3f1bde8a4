"""`externalsource reconcile` and `externalsource get`, the installed script run as a user runs
it (admin kubeconfig in `KUBECONFIG`) against the real API server and a running controller."""

from __future__ import annotations

import os
import pathlib
import subprocess

from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import ControlPlane
from tests.e2e.processes import BIN, ThreadedOrigin
from tests.e2e.sources import REQUESTED_AT, external_source, get_source, wait_condition


def externalsource(
    plane: ControlPlane, *args: str, kubeconfig: pathlib.Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or plane.kubeconfig)}
    return subprocess.run(
        [str(BIN / "externalsource"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_reconcile_prints_the_new_revision(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    make_controller()
    e2e_origin.set("/flags", body=b'{"a": 1}', etag='"1"')
    control_plane.apply(
        external_source("flags", namespace=ns, url=e2e_origin.url("/flags"), interval="1h")
    )
    first = wait_condition(control_plane, ns, "flags")["status"]["artifact"]["revision"]
    e2e_origin.set("/flags", body=b'{"a": 2}', etag='"2"')

    result = externalsource(control_plane, "reconcile", "flags", "-n", ns, "--timeout", "30s")

    assert result.returncode == 0, result.stderr
    source = get_source(control_plane, ns, "flags")
    assert source is not None
    revision = source["status"]["artifact"]["revision"]
    assert revision != first
    assert result.stdout.splitlines()[-1] == f"fetched revision {revision}"
    assert (
        source["status"]["lastHandledReconcileAt"]
        == (source["metadata"]["annotations"][REQUESTED_AT])
    )


def test_reconcile_of_a_failing_source_prints_the_failure_and_exits_1(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    make_controller()
    e2e_origin.set("/down", body=b"{}")
    e2e_origin.mode("/down", status=503)
    control_plane.apply(
        external_source("down", namespace=ns, url=e2e_origin.url("/down"), interval="1h")
    )
    failed = wait_condition(control_plane, ns, "down", status="False", timeout=60)

    result = externalsource(control_plane, "reconcile", "down", "-n", ns, "--timeout", "30s")

    assert result.returncode == 1
    message = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "503" in message
    assert "503" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: reconciliation failed: ")


def test_reconcile_without_a_controller_times_out(
    control_plane: ControlPlane, e2e_namespace: str
) -> None:
    control_plane.apply(
        external_source("idle", namespace=e2e_namespace, url="http://127.0.0.1:9/none")
    )

    result = externalsource(
        control_plane, "reconcile", "idle", "-n", e2e_namespace, "--timeout", "2s"
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: timed out after 2s"), result.stderr
    source = get_source(control_plane, e2e_namespace, "idle")
    assert source is not None
    assert REQUESTED_AT in source["metadata"]["annotations"]


def test_reconcile_of_a_missing_source_is_one_error_line(
    control_plane: ControlPlane, e2e_namespace: str
) -> None:
    result = externalsource(control_plane, "reconcile", "nope", "-n", e2e_namespace)

    assert result.returncode == 1
    assert result.stderr == f"error: ExternalSource {e2e_namespace}/nope not found\n"


def test_get_lists_sources_with_ready_and_revision(
    control_plane: ControlPlane,
    make_controller: MakeController,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
) -> None:
    ns = e2e_namespace
    make_controller()
    e2e_origin.set("/ok", body=b"[1]", etag='"1"')
    e2e_origin.set("/down", body=b"{}")
    e2e_origin.mode("/down", status=503)
    control_plane.apply(
        external_source("ok", namespace=ns, url=e2e_origin.url("/ok")),
        external_source("down", namespace=ns, url=e2e_origin.url("/down")),
    )
    ok = wait_condition(control_plane, ns, "ok")
    wait_condition(control_plane, ns, "down", status="False", timeout=60)

    result = externalsource(control_plane, "get", "-n", ns)

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "REVISION", "SUSPENDED", "READY"]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {"down", "ok"}
    revision = ok["status"]["artifact"]["revision"]
    assert by_name["ok"].split()[1:4] == [revision, "False", "True"]
    assert ok["status"]["artifact"]["lastUpdateTime"] in by_name["ok"]
    assert by_name["down"].split()[1:3] == ["False", "False"]
    assert "503" in by_name["down"]

    everywhere = externalsource(control_plane, "get", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    header, *rows = everywhere.stdout.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert {tuple(r.split()[:2]) for r in rows} >= {(ns, "ok"), (ns, "down")}


def test_get_in_an_empty_namespace_says_so(control_plane: ControlPlane, e2e_namespace: str) -> None:
    result = externalsource(control_plane, "get", "-n", e2e_namespace)

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == f"no ExternalSource objects found in {e2e_namespace} namespace\n"


def test_unreachable_api_server_is_one_error_line(tmp_path: pathlib.Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: x, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: x, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: x, user: x}}]\n"
    )
    result = subprocess.run(
        [str(BIN / "externalsource"), "get", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_reconcile_of_a_suspended_source_is_refused(
    control_plane: ControlPlane, e2e_namespace: str
) -> None:
    control_plane.apply(
        external_source(
            "paused", namespace=e2e_namespace, url="http://127.0.0.1:9/none", suspend=True
        )
    )

    result = externalsource(control_plane, "reconcile", "paused", "-n", e2e_namespace)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: ExternalSource {e2e_namespace}/paused is suspended: resume it first\n"
    )
    source = get_source(control_plane, e2e_namespace, "paused")
    assert source is not None
    assert REQUESTED_AT not in source["metadata"].get("annotations", {})
