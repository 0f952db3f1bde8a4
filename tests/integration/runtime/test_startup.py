"""Start-up without usable credentials: one line naming what to set, exit 2, no traceback."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys


def test_missing_credentials_are_one_line_and_exit_2(tmp_path: pathlib.Path) -> None:
    script = pathlib.Path(sys.executable).parent / "externalsource-controller"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    done = subprocess.run(
        [str(script), "--health-addr=127.0.0.1:0", "--metrics-addr=127.0.0.1:0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no usable Kubernetes credentials" in lines[0]
    assert "KUBECONFIG" in lines[0]
    assert "Traceback" not in done.stderr
