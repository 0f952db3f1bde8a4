"""The container image a Helm user pulls, built from the real Dockerfile and run.

`tests/deploy/image.py` builds it (a debootstrap'ed Debian bookworm as `BASE`,
since Docker Hub is out of reach; cached outside the clone). Then, as the
image's non-root user, the controller entry point runs against this tier's real
API server with the shipped RBAC, brings one source to Ready and serves its
artifact; the hooks sidecar entry point answers `/healthz`. The image's size is
printed at the end of the run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence

import httpx
import pytest
import yaml

from tests.deploy import image as build
from tests.e2e import procs
from tests.e2e.conftest import LOG_SOURCES, ControllerIdentity
from tests.e2e.controlplane import ControlPlane, free_port, wait_for
from tests.e2e.processes import CONTROLLER_ENV, ControllerProcess, ThreadedOrigin, fetch_artifact
from tests.e2e.sources import external_source, wait_condition
from tests.fixtures.sidecar import DEFAULT_WHITELIST

#: where the test's files appear inside the container (read-only bind mount)
MOUNT = "/run/externalsource-ci"


class SizeReport:
    """Prints the image's size in the terminal summary (a plugin registered at build)."""

    def __init__(self, line: str) -> None:
        self.line = line

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(self.line)


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> tuple[build.Storage, str]:
    """(storage, reference) of the image, built or taken from the cache."""
    reason = build.unavailable()
    if reason is not None:
        pytest.skip(reason)
    build.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    storage = build.Storage(root=build.CACHE_DIR)
    build.remove_stale_containers(storage)
    base = build.ensure_base(storage)
    reference = build.ensure_image(storage, base)
    line = (
        f"image {reference}: {storage.size(reference) / 1e6:.0f} MB "
        f"(over a Debian minbase of {storage.size(base) / 1e6:.0f} MB)"
    )
    request.config.pluginmanager.register(SizeReport(line), "externalsource-image-size")
    return storage, reference


@pytest.fixture
def container(image: tuple[build.Storage, str]) -> Iterator[build.Container]:
    storage, reference = image
    with build.working_container(storage, reference) as working:
        yield working


def mount_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory the image's user (65532) can read, mounted at `MOUNT`."""
    directory = tmp_path / "mounted"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    return directory


def readable(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


def self_contained_kubeconfig(source: pathlib.Path) -> str:
    """`source` with its CA file inlined (the container sees none of the host's files)."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    for cluster in config["clusters"]:
        ca_file = cluster["cluster"].pop("certificate-authority", None)
        if ca_file:
            data = base64.b64encode(pathlib.Path(ca_file).read_bytes()).decode()
            cluster["cluster"]["certificate-authority-data"] = data
    return yaml.safe_dump(config)


class ImageController(ControllerProcess):
    """The controller entry point of the image, run with `buildah run` as user 65532."""

    def __init__(
        self,
        *,
        working: build.Container,
        mounted: pathlib.Path,
        directory: pathlib.Path,
        namespace: str,
        args: Sequence[str],
    ) -> None:
        super().__init__(
            name="image-controller",
            directory=directory,
            kubeconfig=mounted / "kubeconfig",
            args=args,
        )
        self.working = working
        self.mounted = mounted
        self.namespace = namespace
        # the container's own /tmp (the host's test directory is not mounted)
        self.args = [a for a in self.args if not a.startswith("--spool-dir=")]

    def start(self) -> ControllerProcess:
        env = {
            **CONTROLLER_ENV,
            "KUBECONFIG": f"{MOUNT}/kubeconfig",
            "PYTHONUNBUFFERED": "1",
            "RUNTIME_NAMESPACE": self.namespace,
        }
        argv = self.working.argv(
            ["externalsource-controller", *self.args], env=env, volumes={self.mounted: MOUNT}
        )
        self.process = procs.spawn(argv, log_path=self.log_path, cwd=self.directory)
        return self

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """`sig` to the entry point only, as a kubelet signals a container's PID 1.

        `buildah run` kills its command when it is signalled itself, so the
        process group (buildah, its chroot helpers, the entry point) cannot be
        signalled as a whole for a graceful stop; SIGKILL after `timeout` as usual.
        """
        assert self.process is not None, f"{self.name} was never started"
        leaf = deepest_descendant(self.process.pid)
        if leaf is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leaf, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        return super().stop(sig=signal.SIGKILL, timeout=5)


def deepest_descendant(pid: int) -> int | None:
    """The last process of the chain of children under `pid` (Linux /proc), or None."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    leaf = None
    while children.get(pid):
        pid = leaf = children[pid][0]
    return leaf


def start_sidecar(
    container: build.Container, mounted: pathlib.Path, log_path: pathlib.Path
) -> tuple[subprocess.Popen[bytes], list[str]]:
    """The image's hooks sidecar entry point, healthy; (process, the controller's hook flags)."""
    readable(mounted / "whitelist.yaml", DEFAULT_WHITELIST)
    readable(mounted / "hooks-token", secrets.token_urlsafe(24))
    port = free_port()
    argv = container.argv(
        [
            "externalsource-hooks-sidecar",
            f"--whitelist={MOUNT}/whitelist.yaml",
            f"--token-file={MOUNT}/hooks-token",
            f"--addr=127.0.0.1:{port}",
        ],
        volumes={mounted: MOUNT},
    )
    process = procs.spawn(argv, log_path=log_path)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"sidecar exited {process.returncode}: {log_path.read_text()}")
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200

    wait_for(healthy, timeout=60, what="the image's hooks sidecar /healthz")
    flags = [
        f"--hooks-endpoint=http://127.0.0.1:{port}",
        f"--hooks-token-file={MOUNT}/hooks-token",
        f"--hooks-whitelist={MOUNT}/whitelist.yaml",
    ]
    return process, flags


def test_image_entry_points_serve_a_ready_source_through_the_sidecar(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    controller_identity: ControllerIdentity,
    container: build.Container,
    e2e_namespace: str,
    e2e_origin: ThreadedOrigin,
    tmp_path: pathlib.Path,
) -> None:
    mounted = mount_dir(tmp_path)
    readable(mounted / "kubeconfig", self_contained_kubeconfig(controller_identity.kubeconfig))
    logs = request.node.stash.setdefault(LOG_SOURCES, [])
    sidecar_log = tmp_path / "image-sidecar.log"
    logs.append(("image sidecar log", lambda: sidecar_log.read_text(errors="replace")))
    sidecar, hook_flags = start_sidecar(container, mounted, sidecar_log)
    controller = ImageController(
        working=container,
        mounted=mounted,
        directory=tmp_path / "image-controller",
        namespace=controller_identity.namespace,
        args=hook_flags,
    )
    logs.append(("image controller log (tail)", controller.log_tail))
    e2e_origin.set("/inventory", body=b'{"hosts": ["b", "a"], "x": 1}', etag='"v1"')
    try:
        controller.start()
        controller.wait_ready(timeout=60)
        control_plane.apply(
            external_source(
                "inventory",
                namespace=e2e_namespace,
                url=e2e_origin.url("/inventory"),
                destinationPath="inventory.json",
                hooks={
                    "postRequest": [{"name": "hosts", "command": "jq", "args": ["-c", ".hosts"]}]
                },
            )
        )
        source = wait_condition(control_plane, e2e_namespace, "inventory", timeout=60)
        artifact = source["status"]["artifact"]
        assert artifact["url"] == controller.artifact_url(artifact["path"])
        files = fetch_artifact(artifact["url"], digest=artifact["digest"])
        assert files == {"inventory.json": b'["b","a"]\n'}
    finally:
        code = controller.stop(timeout=20)
        procs.stop(sidecar)
    assert code == 0, controller.log_tail()
    assert "UserWarning" not in controller.logs(), "kr8s's version warning reaches stderr"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{controller.health_port}/healthz", timeout=2.0)


def test_image_user_is_numeric_non_root_and_the_entry_point_is_the_controller(
    image: tuple[build.Storage, str], container: build.Container
) -> None:
    storage, reference = image
    assert storage.config(reference, ".Config.User") == "65532:65532"
    assert storage.config(reference, ".Config.Entrypoint") == "[externalsource-controller]"
    probe = "import os, shutil; print(os.getuid(), os.getgid(), shutil.which('pip'))"
    ids = subprocess.run(
        container.argv(["python3", "-c", probe]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert ids == ["65532", "65532", "None"], "non-root, and no pip left in the image"
