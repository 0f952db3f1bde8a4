"""The e2e tier's fixtures: a real control plane per session, the controller as processes.

Fixtures (names are stable; other tests build on them):

* `control_plane` (session) — `tests.e2e.controlplane.ControlPlane`: etcd,
  kube-apiserver, kube-controller-manager from `KUBEBUILDER_ASSETS`, both CRDs
  installed (ours from `manifests/crd/`, Flux's test copy from
  `../shared/flux/`). `.kubeconfig`, `.server`, `.ca_file`, `.kubectl()`,
  `.apply()`, `.get()`, `.apiserver_request_total()`, `.count_writes()`,
  `.audit_mark()`/`.audit_writes()`, `.set_tokens()`, `.restart_apiserver()`,
  `.kubeconfig_for_token()`, `.bind_cluster_role()`, `.wait_namespaces_settled()`.
* `controller_identity` (session) — the controller's own ServiceAccount
  `externalsource-system/externalsource-controller` with the shipped RBAC
  (`manifests/base/rbac.yaml`), as `.kubeconfig` (a TokenRequest token) and
  `.user` (its username in audit events).
* `make_controller` (function) — factory: `make_controller(*flags, env=None,
  storage="memory", kubeconfig=None, wait=True)` starts
  `externalsource-controller` as a `ControllerProcess` (its ServiceAccount's
  kubeconfig by default, `RUNTIME_NAMESPACE=externalsource-system`); every
  process is stopped at teardown and its log is shown if the test fails.
* `e2e_namespace` (function) — a fresh namespace; at teardown its sources are
  deleted while the test's controllers still run (finalizers released), then
  the namespace.
* `e2e_origin` (function) — `ThreadedOrigin`, the origin of
  `tests/fixtures/origin.py` served from a thread (tests here are synchronous).
* `make_sidecar` (function) — factory: `make_sidecar(whitelist=TEXT)` starts
  `externalsource-hooks-sidecar`; pass `sidecar.controller_flags()` on.

Helpers: `tests/e2e/sources.py` (build/apply/read ExternalSources, `wait_condition`,
`wait_revision`, `request_reconcile`), `tests/e2e/processes.py` (`fetch_artifact`:
download and verify as Flux does). Tests here are synchronous functions. To show
another log when a test fails, append `(title, callable returning text)` to
`request.node.stash[LOG_SOURCES]`. `EXTERNALSOURCE_E2E_KEEP=1` keeps the control
plane's directory (its logs and audit log) after the session.

Without assets every e2e test is skipped with one reason line; with
`EXTERNALSOURCE_E2E_REQUIRED=1` (CI) a skipped e2e test is a failure. After the
session, a process left by this session fails the run.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Generator, Iterator

import attrs
import pytest

from tests.e2e import procs
from tests.e2e.controlplane import (
    ASSETS_VARIABLE,
    REQUIRED_VARIABLE,
    ROOT,
    ControlPlane,
    missing_assets,
    running_control_plane,
    write_kubeconfig,
)
from tests.e2e.processes import ControllerProcess, HooksSidecar, ThreadedOrigin
from tests.fixtures.sidecar import DEFAULT_WHITELIST

E2E_DIR = pathlib.Path(__file__).parent
CONTROLLER_NAMESPACE = "externalsource-system"
CONTROLLER_SERVICE_ACCOUNT = "externalsource-controller"
#: (title, callable returning text) pairs shown in the report of a failed test
LOG_SOURCES = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()
_skip_reason: list[str] = []
_started_plane: list[bool] = []


def _is_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in item.path.parents


def _required() -> bool:
    return os.environ.get(REQUIRED_VARIABLE, "") not in ("", "0", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if _is_e2e(item)]
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
    reason = missing_assets(os.environ)
    if reason is None:
        return
    if e2e:
        _skip_reason.append(reason)
    for item in e2e:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skip_reason:
        terminalreporter.write_line(_skip_reason[0])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not _is_e2e(item):
        return report
    if report.skipped and _required() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped but {REQUIRED_VARIABLE}=1 makes a skip fail: {reason}"
    if report.failed:
        for title, text in item.stash.get(LOG_SOURCES, []):
            try:
                report.sections.append((title, text()))
            except OSError as exc:
                report.sections.append((title, f"(log unreadable: {exc})"))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _started_plane:
        return
    procs.stop_all()
    left = procs.leftover_processes()
    if left:
        print("\ne2e: processes left after the session:\n  " + "\n  ".join(left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager with both CRDs (see module docstring)."""
    reason = missing_assets(os.environ)
    if reason is not None:
        pytest.skip(reason)
    _started_plane.append(True)
    try:
        with running_control_plane(pathlib.Path(os.environ[ASSETS_VARIABLE])) as plane:
            yield plane
    finally:
        procs.stop_all()


@attrs.frozen
class ControllerIdentity:
    """The controller's ServiceAccount: a kubeconfig with its token and its audit username."""

    kubeconfig: pathlib.Path
    user: str
    namespace: str


@pytest.fixture(scope="session")
def controller_identity(control_plane: ControlPlane) -> ControllerIdentity:
    """The ServiceAccount of `manifests/base` bound to the shipped RBAC (least privilege)."""
    base = ROOT / "manifests" / "base"
    control_plane.kubectl("apply", "-f", str(base / "namespace.yaml"))
    for name in ("serviceaccount.yaml", "rbac.yaml"):
        control_plane.kubectl("apply", "-n", CONTROLLER_NAMESPACE, "-f", str(base / name))
    token = control_plane.kubectl(
        "create",
        "token",
        CONTROLLER_SERVICE_ACCOUNT,
        "-n",
        CONTROLLER_NAMESPACE,
        "--duration=4h",
    ).stdout.strip()
    path = write_kubeconfig(
        control_plane.directory / "controller.kubeconfig",
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        user={"token": token},
        namespace=CONTROLLER_NAMESPACE,
    )
    return ControllerIdentity(
        kubeconfig=path,
        user=f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_SERVICE_ACCOUNT}",
        namespace=CONTROLLER_NAMESPACE,
    )


class MakeController:
    """Factory of controller processes: `make_controller(*flags, env=None, storage="memory",
    kubeconfig=None, wait=True) -> ControllerProcess`; `.started` lists them all."""

    def __init__(
        self, *, identity: ControllerIdentity, directory: pathlib.Path, node: pytest.Item
    ) -> None:
        self.identity = identity
        self.directory = directory
        self.started: list[ControllerProcess] = []
        self._logs = node.stash.setdefault(LOG_SOURCES, [])

    def __call__(
        self,
        *flags: str,
        env: dict[str, str] | None = None,
        storage: str = "memory",
        kubeconfig: str | os.PathLike[str] | None = None,
        wait: bool = True,
    ) -> ControllerProcess:
        name = f"controller-{len(self.started)}"
        process = ControllerProcess(
            name=name,
            directory=self.directory / name,
            kubeconfig=pathlib.Path(kubeconfig or self.identity.kubeconfig),
            args=flags,
            env={"RUNTIME_NAMESPACE": self.identity.namespace, **(env or {})},
            storage=storage,
        )
        self.started.append(process)
        self._logs.append((f"{name} log (tail)", process.log_tail))
        for attempt in range(3):
            process.start()
            if not wait:
                break
            try:
                process.wait_ready()
                break
            except AssertionError:
                # another run on this machine may take a port between pick and bind
                lost_race = "address already in use" in process.logs().lower()
                if process.running or not lost_race or attempt == 2:
                    raise
                process.new_ports()
        return process

    def any_running(self) -> bool:
        return any(p.running for p in self.started)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.running:
                process.stop(timeout=15)


@pytest.fixture
def make_controller(
    request: pytest.FixtureRequest,
    controller_identity: ControllerIdentity,
    tmp_path: pathlib.Path,
) -> Iterator[MakeController]:
    """Factory of controller processes; all stopped at teardown, logs shown on failure."""
    factory = MakeController(identity=controller_identity, directory=tmp_path, node=request.node)
    yield factory
    factory.stop_all()


@pytest.fixture
def e2e_namespace(
    request: pytest.FixtureRequest, control_plane: ControlPlane, make_controller: MakeController
) -> Iterator[str]:
    """A fresh namespace (its name); its sources and then itself are deleted at teardown.

    It depends on `make_controller`, so the test's controllers still run at this
    teardown and release their finalizers; when the test left none running, the
    finalizers are removed by hand so the namespace can go.
    """
    name = "e2e-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = name[:50].rstrip("-") + "-" + os.urandom(3).hex()
    control_plane.kubectl("create", "namespace", name)
    yield name
    deleted = False
    if make_controller.any_running():
        result = control_plane.kubectl(
            "delete", "externalsources", "--all", "-n", name, "--timeout=20s", check=False
        )
        deleted = result.returncode == 0
    if not deleted:
        control_plane.kubectl(
            "delete", "externalsources", "--all", "-n", name, "--wait=false", check=False
        )
        left = control_plane.kubectl(
            "get", "externalsources", "-n", name, "-o", "name", check=False
        ).stdout.split()
        for obj in left:
            control_plane.kubectl(
                "patch",
                "-n",
                name,
                obj,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def e2e_origin() -> Iterator[ThreadedOrigin]:
    """A plain-HTTP origin on 127.0.0.1 served from its own thread (see ThreadedOrigin)."""
    origin = ThreadedOrigin()
    origin.start_sync()
    yield origin
    origin.close_sync()


@pytest.fixture
def make_sidecar(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[Callable[..., HooksSidecar]]:
    """Factory: `make_sidecar(whitelist=TEXT)` starts `externalsource-hooks-sidecar`."""
    started: list[HooksSidecar] = []
    sources = request.node.stash.setdefault(LOG_SOURCES, [])

    def make(*, whitelist: str = DEFAULT_WHITELIST) -> HooksSidecar:
        sidecar = HooksSidecar(directory=tmp_path / f"sidecar-{len(started)}", whitelist=whitelist)
        started.append(sidecar)
        sources.append((f"hooks-sidecar-{len(started) - 1} log (tail)", sidecar.logs))
        return sidecar

    yield make
    for sidecar in started:
        sidecar.stop()
