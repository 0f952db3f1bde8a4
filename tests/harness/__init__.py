"""The Kubernetes API emulator controller tests run against (kmock-based; see emulator.py).

Public surface: `Emulator` (the server), `run_emulator()` (serve it on a real
socket), `write_kubeconfig()`/`kubeconfig()` (point a client at it), and
`LoggedRequest` (entries of `Emulator.requests` / `Emulator.writes()`).
The pytest fixtures built on these live in tests/fixtures/k8s.py.
"""

from tests.harness.emulator import Emulator
from tests.harness.requestlog import LoggedRequest
from tests.harness.server import FLUX_CRD, default_crds, kubeconfig, run_emulator, write_kubeconfig

__all__ = [
    "FLUX_CRD",
    "Emulator",
    "LoggedRequest",
    "default_crds",
    "kubeconfig",
    "run_emulator",
    "write_kubeconfig",
]
