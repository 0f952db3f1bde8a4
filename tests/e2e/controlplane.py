"""A real Kubernetes control plane for the e2e tier: etcd, kube-apiserver, kube-controller-manager.

Started from `KUBEBUILDER_ASSETS` (envtest's convention) once per test session
on free loopback ports, with certificates generated here (trustme), in a
temporary directory; stopped with the session, also on failure or Ctrl-C (see
`tests/e2e/procs.py`). The flags are those of `../shared/envtest/README.md`.

What a test gets (`ControlPlane`, the `control_plane` fixture):

* `kubeconfig` (admin, client certificate in `system:masters`), `server`,
  `ca_file`; `kubectl(*args)`; `api` (an httpx client with admin credentials);
* `apiserver_request_total()`: the API server's own request counter from
  `/metrics`, and `count_writes(before, after, ...)` to diff two scrapes;
* an audit log (`audit_mark()`, `audit_events(since=mark)`), which names the
  *user* of each request, something `apiserver_request_total` cannot do;
* a static token file: `set_tokens({token: TokenUser(...)})` then
  `restart_apiserver()` (static tokens are read at start only; the API server
  comes back on the same port and etcd), and `kubeconfig_for_token(token)`.

How to count only the controller's writes: the controller runs as its own
ServiceAccount (`controller_kubeconfig`, bound to the shipped RBAC), so the audit
log attributes every request to it (`audit_writes(user=...)`); the
`apiserver_request_total` diff is the API server's aggregate view and is exact
only while nothing else writes the counted resources (no other controller, no
namespace being deleted: `wait_namespaces_settled()`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import httpx
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import procs

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
REQUIRED_VARIABLE = "EXTERNALSOURCE_E2E_REQUIRED"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the project's shared folder beside the clone (../shared): envtest assets, Flux's CRD
SHARED = ROOT.parent / "shared"
OUR_CRD = ROOT / "manifests" / "crd" / "source.flux.oddkin.co_externalsources.yaml"
FLUX_CRD = SHARED / "flux" / "externalartifacts.source.toolkit.fluxcd.io.yaml"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
AUDIT_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
T = TypeVar("T")

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/metrics", "/version", "/openapi*"]
  - level: Metadata
"""


def missing_assets(environ: Mapping[str, str]) -> str | None:
    """Why the tier cannot run here (one line), or None when every binary is present."""
    assets = environ.get(ASSETS_VARIABLE, "")
    hint = (
        f"set {ASSETS_VARIABLE}=DIR holding {', '.join(BINARIES)}, e.g. from "
        "`setup-envtest use -p path` plus kube-controller-manager, or "
        "decompress ../shared/envtest/*.xz as .ci/run does"
    )
    if not assets:
        return f"e2e: no envtest assets ({hint})"
    absent = [b for b in BINARIES if not os.access(pathlib.Path(assets, b), os.X_OK)]
    if absent:
        return f"e2e: {ASSETS_VARIABLE}={assets} lacks {', '.join(absent)} ({hint})"
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until it returns something other than None/False; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except (httpx.HTTPError, OSError, subprocess.SubprocessError, ValueError) as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{suffix}")
        time.sleep(interval)


@attrs.frozen
class TokenUser:
    """Who a static bearer token authenticates as (`--token-auth-file` row)."""

    user: str
    uid: str
    groups: tuple[str, ...] = ()


@attrs.frozen
class Sample:
    """One `apiserver_request_total` series: its labels and value."""

    labels: Mapping[str, str]
    value: float


@attrs.define
class _Certs:
    ca: trustme.CA
    directory: pathlib.Path

    def write(self, name: str, cert: trustme.LeafCert) -> tuple[pathlib.Path, pathlib.Path]:
        crt, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        crt.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        key.write_bytes(cert.private_key_pem.bytes())
        key.chmod(0o600)
        return crt, key


def _write_ca_key(ca: trustme.CA, path: pathlib.Path) -> None:
    path.write_bytes(ca.private_key_pem.bytes())
    path.chmod(0o600)


def _write_sa_keys(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def write_kubeconfig(
    path: pathlib.Path,
    *,
    server: str,
    ca_file: pathlib.Path,
    user: Mapping[str, str],
    namespace: str = "default",
) -> pathlib.Path:
    """A one-context kubeconfig (user: client-certificate/-key paths or a token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "e2e", "user": dict(user)}],
        "contexts": [
            {"name": "e2e", "context": {"cluster": "e2e", "user": "e2e", "namespace": namespace}}
        ],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager; see the module docstring for the API."""

    def __init__(self, *, assets: pathlib.Path, directory: pathlib.Path) -> None:
        self.assets = assets
        self.directory = directory
        self.logs = directory / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.audit_log = directory / "audit.log"
        self.token_file = directory / "tokens.csv"
        self._tokens: dict[str, TokenUser] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._apiserver_argv: list[str] = []
        self._api: httpx.Client | None = None
        self.apiserver_port = 0
        self._make_certs()

    # --- public API -------------------------------------------------------------------

    @property
    def server(self) -> str:
        """`https://127.0.0.1:<port>` of kube-apiserver."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def api(self) -> httpx.Client:
        """An httpx client on `server` with admin credentials (10 s timeout)."""
        if self._api is None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            context.load_cert_chain(str(self._admin_crt), str(self._admin_key))
            self._api = httpx.Client(base_url=self.server, verify=context, timeout=10.0)
        return self._api

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the envtest kubectl with the admin kubeconfig (or `kubeconfig`); text output.

        With `check` a non-zero exit raises AssertionError showing the command and stderr.
        """
        argv = [str(self.assets / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}"]
        result = subprocess.run(
            [*argv, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def apply(self, *objects: Mapping[str, Any]) -> None:
        """`kubectl apply -f -` of these objects (as a YAML stream)."""
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([dict(o) for o in objects]))

    def get(self, path: str) -> dict[str, Any] | None:
        """GET an API path as admin: the JSON object, or None on 404."""
        response = self.api.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def apiserver_request_total(self) -> list[Sample]:
        """Samples of `apiserver_request_total` (labels: verb, group, version, resource,
        subresource, scope, component, code, dry_run) scraped from `/metrics` now."""
        response = self.api.get("/metrics")
        response.raise_for_status()
        samples = []
        for family in text_string_to_metric_families(response.text):
            if family.name != "apiserver_request":
                continue
            for sample in family.samples:
                if sample.name == "apiserver_request_total":
                    samples.append(Sample(labels=dict(sample.labels), value=sample.value))
        return samples

    @staticmethod
    def count_writes(
        before: Sequence[Sample],
        after: Sequence[Sample],
        *,
        resources: Iterable[str] | None = None,
        verbs: Iterable[str] = WRITE_VERBS,
    ) -> dict[tuple[str, str, str, str], float]:
        """Growth of `apiserver_request_total` between two scrapes, for write verbs
        (and these resources), keyed by (verb, resource, subresource, code); zeros omitted."""
        wanted_verbs = set(verbs)
        wanted_resources = None if resources is None else set(resources)

        def keyed(samples: Sequence[Sample]) -> dict[tuple[str, str, str, str], float]:
            totals: dict[tuple[str, str, str, str], float] = {}
            for s in samples:
                labels = s.labels
                if labels.get("verb") not in wanted_verbs:
                    continue
                if wanted_resources is not None and labels.get("resource") not in wanted_resources:
                    continue
                key = (
                    labels.get("verb", ""),
                    labels.get("resource", ""),
                    labels.get("subresource", ""),
                    labels.get("code", ""),
                )
                totals[key] = totals.get(key, 0.0) + s.value
            return totals

        start, end = keyed(before), keyed(after)
        return {k: v - start.get(k, 0.0) for k, v in end.items() if v - start.get(k, 0.0) > 0}

    def audit_mark(self) -> int:
        """A position in the audit log; pass it to `audit_events(since=...)`."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audit_events(self, *, since: int = 0) -> list[dict[str, Any]]:
        """Audit events (level Metadata, stage ResponseComplete) written after `since`."""
        if not self.audit_log.exists():
            return []
        with self.audit_log.open("rb") as log:
            log.seek(since)
            data = log.read()
        events = []
        for line in data.splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return [e for e in events if e.get("stage") == "ResponseComplete"]

    def audit_writes(self, *, user: str, since: int = 0) -> list[str]:
        """Write requests `user` made after `since`, as `verb resource[/sub] ns/name code`."""
        found = []
        for event in self.audit_events(since=since):
            if event.get("user", {}).get("username") != user:
                continue
            if event.get("verb") not in AUDIT_WRITE_VERBS:
                continue
            ref = event.get("objectRef", {})
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            code = event.get("responseStatus", {}).get("code", "")
            found.append(
                f"{event['verb']} {resource} {ref.get('namespace', '')}/{ref.get('name', '')}"
                f" {code}"
            )
        return found

    def set_tokens(self, tokens: Mapping[str, TokenUser | tuple[str, str, Sequence[str]]]) -> None:
        """Replace the static token file (token -> user); takes effect at `restart_apiserver()`."""
        self._tokens = {
            t: u if isinstance(u, TokenUser) else TokenUser(u[0], u[1], tuple(u[2]))
            for t, u in tokens.items()
        }
        self._write_tokens()

    def kubeconfig_for_token(self, token: str, *, name: str | None = None) -> pathlib.Path:
        """A kubeconfig that authenticates with this bearer token."""
        path = self.directory / "kubeconfigs" / f"{name or 'token-' + token[:8]}.yaml"
        path.parent.mkdir(exist_ok=True)
        return write_kubeconfig(
            path, server=self.server, ca_file=self.ca_file, user={"token": token}
        )

    def bind_cluster_role(self, *, user: str, role: str = "cluster-admin") -> None:
        """A ClusterRoleBinding of `role` to `user` (e.g. a static-token user).

        Waits until the role has rules: kube-controller-manager fills the aggregated
        roles (view, edit, admin) a few seconds after the control plane starts.
        """

        def filled() -> bool:
            found = self.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")
            return bool(found and found.get("rules"))

        wait_for(filled, timeout=60, what=f"ClusterRole {role} to have rules")
        name = "e2e-" + "".join(c if c.isalnum() else "-" for c in f"{user}-{role}").lower()
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name[:253]},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port and etcd (re-reads tokens).

        kube-controller-manager exits when the API server vanishes while it is still
        starting its controllers, so this first waits for it to be fully up, and starts
        it again should it have exited anyway.
        """
        self._wait_controller_manager_settled()
        # a graceful stop can take 20 s while it drains; state lives in etcd, so do not wait
        procs.stop(self._processes.pop("kube-apiserver"), timeout=3)
        if self._api is not None:
            self._api.close()
            self._api = None
        self._start_apiserver()
        process = self._processes.get("kube-controller-manager")
        if process is None or process.poll() is not None:
            self._start_controller_manager()

    def _wait_controller_manager_settled(self) -> None:
        def filled() -> bool:
            # the last of its start-up work that is visible: aggregated roles get their rules
            roles = [
                self.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")
                for name in ("view", "edit", "admin")
            ]
            return all(role and role.get("rules") for role in roles)

        wait_for(filled, timeout=60, what="kube-controller-manager to start its controllers")

    def wait_namespaces_settled(self, *, timeout: float = 60.0) -> None:
        """Wait until no namespace is Terminating (kube-controller-manager done deleting)."""

        def settled() -> bool:
            body = self.get("/api/v1/namespaces")
            assert body is not None
            return not any(n["status"].get("phase") == "Terminating" for n in body["items"])

        wait_for(settled, timeout=timeout, what="namespaces to finish terminating")

    def log_tail(self, *, lines: int = 40) -> str:
        """The last lines of each control-plane log (for failure reports)."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # --- start/stop -------------------------------------------------------------------

    def start(self) -> None:
        self._start_etcd()
        self._start_apiserver()
        self._start_controller_manager()

        for crd in (OUR_CRD, FLUX_CRD):
            self.kubectl("apply", "--server-side", "-f", str(crd))
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/externalsources.source.flux.oddkin.co",
            "crd/externalartifacts.source.toolkit.fluxcd.io",
        )

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            process = self._processes.pop(name, None)
            if process is not None:
                # nothing of the session's state must survive: a drain is not worth waiting for
                procs.stop(process, timeout=5)

    def _make_certs(self) -> None:
        pki = self.directory / "pki"
        pki.mkdir()
        ca = trustme.CA(organization_name="externalsource e2e")
        certs = _Certs(ca, pki)
        self.ca_file = pki / "ca.crt"
        self.ca_file.write_bytes(ca.cert_pem.bytes())
        self._ca_key = pki / "ca.key"
        _write_ca_key(ca, self._ca_key)
        self._serving_crt, self._serving_key = certs.write(
            "apiserver", ca.issue_cert("127.0.0.1", "localhost", "::1")
        )
        self._admin_crt, self._admin_key = certs.write(
            "admin",
            ca.issue_cert("admin.e2e", common_name="admin", organization_name="system:masters"),
        )
        kcm_crt, kcm_key = certs.write(
            "kcm",
            ca.issue_cert("kcm.e2e", common_name="system:kube-controller-manager"),
        )
        proxy_ca = trustme.CA(organization_name="externalsource e2e front proxy")
        self._proxy_ca_file = pki / "front-proxy-ca.crt"
        self._proxy_ca_file.write_bytes(proxy_ca.cert_pem.bytes())
        self._proxy_crt, self._proxy_key = _Certs(proxy_ca, pki).write(
            "front-proxy-client",
            proxy_ca.issue_cert("front-proxy-client.e2e", common_name="front-proxy-client"),
        )
        self._sa_key, self._sa_pub = _write_sa_keys(pki)
        self.apiserver_port = free_port()
        self.kubeconfig = write_kubeconfig(
            self.directory / "admin.kubeconfig",
            server=self.server,
            ca_file=self.ca_file,
            user={"client-certificate": str(self._admin_crt), "client-key": str(self._admin_key)},
        )
        self._kcm_kubeconfig = write_kubeconfig(
            self.directory / "kcm.kubeconfig",
            server=self.server,
            ca_file=self.ca_file,
            user={"client-certificate": str(kcm_crt), "client-key": str(kcm_key)},
        )
        (self.directory / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self._write_tokens()

    def _write_tokens(self) -> None:
        rows = [
            f'{token},{u.user},{u.uid},"{",".join(u.groups)}"' for token, u in self._tokens.items()
        ]
        # kube-apiserver refuses an empty file: keep one row nobody holds
        rows = rows or [f"{os.urandom(16).hex()},e2e-nobody,e2e-nobody"]
        self.token_file.write_text("\n".join(rows) + "\n")
        self.token_file.chmod(0o600)

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        process = procs.spawn(argv, log_path=self.logs / f"{name}.log")
        self._processes[name] = process
        return process

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        process = self._spawn(
            "etcd",
            [
                str(self.assets / "etcd"),
                "--name=e2e",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            self._check_alive("etcd", process)
            with httpx.Client(timeout=2.0) as client_:
                return client_.get(f"{self.etcd_url}/health").status_code == 200

        wait_for(healthy, timeout=30, what="etcd /health")

    def _start_apiserver(self) -> None:
        if not self._apiserver_argv:
            pki = self.directory / "pki"
            self._apiserver_argv = [
                str(self.assets / "kube-apiserver"),
                "--bind-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--etcd-servers={self.etcd_url}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                f"--client-ca-file={self.ca_file}",
                f"--tls-cert-file={self._serving_crt}",
                f"--tls-private-key-file={self._serving_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self._sa_pub}",
                f"--service-account-signing-key-file={self._sa_key}",
                f"--token-auth-file={self.token_file}",
                f"--audit-policy-file={pki.parent / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=0",
                "--profiling=false",
                # a front proxy CA, so that kube-controller-manager's delegated authentication
                # finds a complete extension-apiserver-authentication ConfigMap
                f"--requestheader-client-ca-file={self._proxy_ca_file}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={self._proxy_crt}",
                f"--proxy-client-key-file={self._proxy_key}",
            ]
        process = self._spawn("kube-apiserver", self._apiserver_argv)

        def ready() -> bool:
            self._check_alive("kube-apiserver", process)
            response = self.api.get("/readyz")
            return response.status_code == 200

        wait_for(ready, timeout=90, what="kube-apiserver /readyz", interval=0.25)

    def _start_controller_manager(self) -> None:
        flex = self.directory / "flex"
        flex.mkdir(exist_ok=True)
        port = free_port()
        kubeconfig = self._kcm_kubeconfig
        process = self._spawn(
            "kube-controller-manager",
            [
                str(self.assets / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--root-ca-file={self.ca_file}",
                f"--service-account-private-key-file={self._sa_key}",
                f"--cluster-signing-cert-file={self.ca_file}",
                f"--cluster-signing-key-file={self._ca_key}",
                "--controllers=*,-service-ca-certificate-publisher-controller",
                f"--flex-volume-plugin-dir={flex}",
            ],
        )

        def healthy() -> bool:
            self._check_alive("kube-controller-manager", process)
            with httpx.Client(verify=False, timeout=2.0) as client:
                return client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200

        wait_for(healthy, timeout=60, what="kube-controller-manager /healthz", interval=0.25)

    def _check_alive(self, name: str, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            log = (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{name} exited {process.returncode} at start:\n{log}")


@contextlib.contextmanager
def running_control_plane(assets: pathlib.Path) -> Iterator[ControlPlane]:
    """Start a control plane in a fresh temp dir; stop it (and remove the dir) on the way out.

    `EXTERNALSOURCE_E2E_KEEP=1` keeps the directory (logs, audit log, certificates).
    """
    for attempt in range(3):
        directory = pathlib.Path(tempfile.mkdtemp(prefix="externalsource-e2e-"))
        plane = ControlPlane(assets=assets, directory=directory)
        try:
            plane.start()
            break
        except RuntimeError as exc:
            plane.stop()
            shutil.rmtree(directory, ignore_errors=True)
            # another run on this machine may take a port between pick and bind
            if "address already in use" not in str(exc) or attempt == 2:
                raise
        except BaseException:
            plane.stop()
            shutil.rmtree(directory, ignore_errors=True)
            raise
    try:
        yield plane
    finally:
        plane.stop()
        if os.environ.get("EXTERNALSOURCE_E2E_KEEP") != "1":
            shutil.rmtree(directory, ignore_errors=True)
