"""Not collected on its own: `test_harness.py` runs it in a child pytest and interrupts it.

It brings up what a real e2e test does (control plane, a controller, a hooks sidecar), writes
this session's marker to `$E2E_PROBE_FILE`, and waits to be interrupted.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable

from tests.e2e import procs
from tests.e2e.conftest import MakeController
from tests.e2e.controlplane import ControlPlane
from tests.e2e.processes import HooksSidecar


def test_wait_to_be_interrupted(
    control_plane: ControlPlane,
    make_controller: MakeController,
    make_sidecar: Callable[..., HooksSidecar],
) -> None:
    make_sidecar()
    make_controller()
    pathlib.Path(os.environ["E2E_PROBE_FILE"]).write_text(procs.SESSION_ID)
    time.sleep(300)
