"""Build the container image from the real Dockerfile and run its entry points, without Docker.

Docker Hub cannot be reached from CI, Debian can. So the image's `BASE` (an
argument of the Dockerfile; users get the official `python:3.11-slim-bookworm`)
is a Debian bookworm made here, the way the official image is made:

1. base: `debootstrap --variant=minbase --include=python3,python3-venv bookworm`
   from the Debian mirror apt uses on this machine (read from
   `/etc/apt/sources.list*`, never a hard-coded host); apt's package lists are
   dropped as in any slim image; the machine's CA bundle is copied in with an
   `/etc/pip.conf` pointing at it, so pip in the build trusts what this machine
   trusts (an egress proxy may re-sign TLS); `tar | podman import` registers it;
2. image: `buildah bud --isolation chroot --build-arg BASE=<that base>` of the
   repository's own Dockerfile and build context (.dockerignore applies);
3. run: `buildah from` the image, then `buildah run --isolation chroot --user
   65532:65532 CTR -- <entry point>` (`podman run` cannot set rlimits in some
   sandboxes; `buildah run` shares the host's network, so loopback works).

Both are cached in a container storage outside the clone (`CACHE_DIR`, env
`EXTERNALSOURCE_CI_CACHE`, default `/var/cache/externalsource-ci`, vfs driver):
the base under a tag that hashes its recipe (mirror, packages, CA bundle), the
image under a tag that hashes the build context and the base, so a second run
with the same sources builds nothing; older tags are removed after a build.

Every step raises `StepError("<step>: <why>")`, so a failure names the step that
could not run on this machine and why (missing tool, no root, a build error).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence

import attrs

from tests.deploy.rendering import ROOT

CACHE_DIR = pathlib.Path(os.environ.get("EXTERNALSOURCE_CI_CACHE", "/var/cache/externalsource-ci"))
SUITE = "bookworm"
INCLUDE = ("python3", "python3-venv")
BASE_REPOSITORY = "localhost/externalsource-ci-base"
IMAGE_REPOSITORY = "localhost/externalsource-controller"
#: emptied after debootstrap, as in any slim image: package lists and downloaded .debs
CLEANED = ("var/lib/apt/lists", "var/cache/apt")
HOST_CA_BUNDLE = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (pathlib.Path("/etc/apt/sources.list"), pathlib.Path("/etc/apt/sources.list.d"))
TOOLS = {"buildah": "buildah", "podman": "podman", "debootstrap": "debootstrap"}
USER = "65532:65532"


class StepError(AssertionError):
    """A step of building or running the image failed; the message names the step."""


def unavailable() -> str | None:
    """Why the image cannot be built on this machine at all (one line), or None."""
    if os.geteuid() != 0:
        return "image: building needs root (buildah/podman with the vfs driver, chroot isolation)"
    absent = [package for tool, package in TOOLS.items() if _which(tool) is None]
    if absent:
        names = " ".join(absent)
        return f"image: {names} not found: apt-get install {names} (./dev test does as root)"
    return None


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def _run(step: str, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        result = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StepError(f"{step}: no result after {timeout:g}s ({' '.join(argv[:3])} ...)") from exc
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).decode(errors="replace").strip().splitlines()[-15:]
        raise StepError(f"{step}: exit {result.returncode}\n" + "\n".join(tail))
    return result


def debian_mirror(sources: Sequence[pathlib.Path] = APT_SOURCES) -> str:
    """The first Debian archive URI apt uses here for `SUITE` (deb822 or one-line format)."""
    files: list[pathlib.Path] = []
    for path in sources:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources")))
        elif path.exists():
            files.append(path)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {
                    key.strip().lower(): value.strip()
                    for key, _, value in (line.partition(":") for line in stanza.splitlines())
                    if value and not key.startswith("#")
                }
                if (
                    SUITE in fields.get("suites", "").split()
                    and "deb" in fields.get("types", "").split()
                ):
                    return fields["uris"].split()[0].rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1].rstrip("/")
    raise StepError(f"debootstrap: no Debian {SUITE} mirror in {', '.join(map(str, sources))}")


@attrs.frozen
class Storage:
    """A podman/buildah container storage of its own (vfs) under `root`."""

    root: pathlib.Path

    def _flags(self) -> list[str]:
        return [
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            "--storage-driver=vfs",
        ]

    def podman(self, step: str, *args: str, timeout: float = 120) -> str:
        argv = [str(_which("podman")), *self._flags(), *args]
        return _run(step, argv, timeout=timeout).stdout.decode()

    def buildah(self, step: str, *args: str, timeout: float = 120) -> str:
        argv = [str(_which("buildah")), *self._flags(), *args]
        return _run(step, argv, timeout=timeout).stdout.decode()

    def buildah_argv(self, *args: str) -> list[str]:
        """A `buildah` command line on this storage (for long-running `buildah run`)."""
        return [str(_which("buildah")), *self._flags(), *args]

    def has_image(self, reference: str) -> bool:
        argv = [str(_which("podman")), *self._flags(), "image", "exists", reference]
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0

    def tags(self, repository: str) -> list[str]:
        out = self.podman(
            "list images",
            "images",
            "--format={{.Repository}}:{{.Tag}}",
            f"--filter=reference={repository}",
        )
        return [line for line in out.splitlines() if line.startswith(repository + ":")]

    def remove_other_tags(self, repository: str, keep: str) -> None:
        for reference in self.tags(repository):
            if reference != keep:
                self.podman("remove an outdated cached image", "rmi", "--force", reference)

    def size(self, reference: str) -> int:
        return int(self.podman("image size", "image", "inspect", "--format={{.Size}}", reference))

    def config(self, reference: str, field: str) -> str:
        out = self.podman(
            "image config", "image", "inspect", f"--format={{{{{field}}}}}", reference
        )
        return out.strip()


def _digest(parts: Sequence[bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:16]


def base_key(mirror: str) -> str:
    ca = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""
    recipe = (
        f"debootstrap --variant=minbase --include={','.join(INCLUDE)} {SUITE} {mirror}; "
        f"emptied: {' '.join(CLEANED)}"
    )
    return _digest([recipe.encode(), ca])


def context_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The build context: the Dockerfile and what `.dockerignore`'s `!` lines let through."""
    files = [root / "Dockerfile", root / ".dockerignore"]
    for line in (root / ".dockerignore").read_text(encoding="utf-8").splitlines():
        if not line.startswith("!"):
            continue
        path = root / line[1:].strip().rstrip("/")
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        elif path.is_file():
            files.append(path)
    return files


def context_key(base: str, root: pathlib.Path = ROOT) -> str:
    """A hash of everything the build reads: the base and the build context's files."""
    parts = [base.encode()]
    for path in context_files(root):
        parts += [str(path.relative_to(root)).encode(), path.read_bytes()]
    return _digest(parts)


def ensure_base(storage: Storage) -> str:
    """The cached Debian base's reference, made with debootstrap when absent."""
    mirror = debian_mirror()
    reference = f"{BASE_REPOSITORY}:{base_key(mirror)}"
    if storage.has_image(reference):
        return reference
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=storage.root) as tmp:
        target = pathlib.Path(tmp, "rootfs")
        _run(
            f"debootstrap {SUITE} from {mirror}",
            [
                str(_which("debootstrap")),
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(target),
                mirror,
            ],
            timeout=900,
        )
        for leftover in CLEANED:
            for path in (target / leftover).rglob("*"):
                if path.is_file() or path.is_symlink():
                    path.unlink()
        if HOST_CA_BUNDLE.exists():
            shutil.copyfile(HOST_CA_BUNDLE, target / "etc/ssl/certs/ca-certificates.crt")
            (target / "etc/pip.conf").write_text(
                "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n", encoding="utf-8"
            )
        archive = pathlib.Path(tmp, "rootfs.tar")
        _run(
            "tar the debootstrap tree",
            ["tar", "-C", str(target), "-cf", str(archive), "."],
            timeout=300,
        )
        storage.podman("podman import", "import", str(archive), reference, timeout=300)
    storage.remove_other_tags(BASE_REPOSITORY, reference)
    return reference


def ensure_image(storage: Storage, base: str, *, root: pathlib.Path = ROOT) -> str:
    """The cached image built from the Dockerfile over `base`; built when absent."""
    reference = f"{IMAGE_REPOSITORY}:ci-{context_key(base, root)}"
    if storage.has_image(reference):
        return reference
    storage.buildah(
        "buildah bud (the Dockerfile)",
        "bud",
        "--isolation=chroot",
        "--layers=false",
        f"--build-arg=BASE={base}",
        f"--tag={reference}",
        f"--file={root / 'Dockerfile'}",
        str(root),
        timeout=1200,
    )
    storage.remove_other_tags(IMAGE_REPOSITORY, reference)
    return reference


@attrs.frozen
class Container:
    """A working container of the image: `argv(...)` runs an entry point in it."""

    storage: Storage
    name: str

    def argv(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Mapping[pathlib.Path, str] | None = None,
    ) -> list[str]:
        """`buildah run --isolation chroot --user 65532:65532` of `command` (host network)."""
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        options += [f"--volume={src}:{dst}:ro" for src, dst in (volumes or {}).items()]
        return self.storage.buildah_argv(
            "run", "--isolation=chroot", f"--user={USER}", *options, self.name, "--", *command
        )


def remove_stale_containers(storage: Storage) -> None:
    """Working containers left by test processes that died (each is a full vfs copy)."""
    names = storage.buildah("list containers", "containers", "--format={{.ContainerName}}")
    for name in names.split():
        match = re.fullmatch(r"exs-ci-(\d+)-[0-9a-f]+", name)
        if match and not pathlib.Path(f"/proc/{match[1]}").exists():
            storage.buildah("remove a stale container", "rm", name)


@contextlib.contextmanager
def working_container(storage: Storage, image: str) -> Iterator[Container]:
    """A working container named after this process, removed afterwards."""
    name = f"exs-ci-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    storage.buildah("buildah from", "from", f"--name={name}", image)
    try:
        yield Container(storage=storage, name=name)
    finally:
        storage.buildah("buildah rm", "rm", name)
