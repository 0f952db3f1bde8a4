"""The harness itself: a session that is interrupted (Ctrl-C) or killed outright leaves no
etcd, kube-apiserver, kube-controller-manager, controller or sidecar process behind."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from tests.e2e import procs
from tests.e2e.controlplane import ROOT, ControlPlane, wait_for

PROBE = pathlib.Path(__file__).with_name("harness_probe.py")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_session_leaves_no_process(
    sig: signal.Signals, tmp_path: pathlib.Path, control_plane: ControlPlane
) -> None:
    marker = tmp_path / "session"
    log = tmp_path / "pytest.log"
    env = {**os.environ, "E2E_PROBE_FILE": str(marker)}
    env.pop(procs.SESSION_VARIABLE, None)
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROBE)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: marker.exists() and marker.read_text(),
            timeout=90,
            what=f"the probe session to start:\n{log.read_text()}",
        )
        session = marker.read_text()
        started = procs.leftover_processes(session)
        names = " ".join(started)
        for program in ("etcd", "kube-apiserver", "kube-controller-manager"):
            assert f"/{program} " in names, started
        assert "externalsource-controller" in names, started
        assert "externalsource-hooks-sidecar" in names, started

        os.kill(child.pid, sig)
        child.wait(timeout=60)
        wait_for(
            lambda: not procs.leftover_processes(session),
            timeout=30,
            what=f"the probe's processes to exit: {procs.leftover_processes(session)}",
        )
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_static_tokens_are_rotated_and_revoked_by_a_restart(control_plane: ControlPlane) -> None:
    """`set_tokens` + `restart_apiserver` (same port, same etcd: objects survive)."""
    control_plane.kubectl("create", "configmap", "survivor", "-n", "default")
    control_plane.set_tokens({"old-token": ("e2e-user", "u-1", ["e2e"])})
    control_plane.restart_apiserver()
    control_plane.bind_cluster_role(user="e2e-user", role="view")
    old = control_plane.kubeconfig_for_token("old-token")
    whoami = control_plane.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=old
    )
    assert whoami.stdout == "e2e-user"

    control_plane.set_tokens({"new-token": ("e2e-user", "u-1", ["e2e"])})
    control_plane.restart_apiserver()
    refused = control_plane.kubectl("get", "configmaps", kubeconfig=old, check=False)
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stderr
    new = control_plane.kubeconfig_for_token("new-token")
    listed = control_plane.kubectl("get", "configmap", "survivor", "-o", "name", kubeconfig=new)
    assert listed.stdout.strip() == "configmap/survivor"
    control_plane.kubectl("delete", "configmap", "survivor", "-n", "default")
