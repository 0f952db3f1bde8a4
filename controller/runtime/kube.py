"""The process's Kubernetes clients: one set of credentials, one client per long-lived user.

Every request goes through `controller.runtime.client.KubeClient` (the door).
Here the door is opened for each user of the API with its own connection
pool: the reconciler (writes, Secrets, Events), each informer (a broken or
slow watch stream never holds up the other's, nor the reconcile writes) and
the leader elector (a lease renewal never queues behind a burst of
reconciles, so it is not rate limited either). They share the credentials,
so one 401 re-reads them once for all, and the client-side rate limiter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from controller.runtime.client import ClientRateLimiter, Credentials, KubeClient

#: client-go's defaults, used until the API server shows it runs API Priority and Fairness
DEFAULT_QPS = 50.0
DEFAULT_BURST = 300


def runtime_namespace(environ: Mapping[str, str]) -> str | None:
    """The controller's own namespace from the downward API, when running in a pod."""
    return environ.get("RUNTIME_NAMESPACE") or environ.get("POD_NAMESPACE") or None


async def connect(
    *,
    url: str | None = None,
    kubeconfig: str | Mapping[str, Any] | None = None,
    namespace: str | None = None,
    name: str = "client",
) -> KubeClient:
    """One client without a client-side rate limit (command-line tools, tests)."""
    credentials = await Credentials.load(url=url, kubeconfig=kubeconfig, namespace=namespace)
    return KubeClient(credentials, name=name)


@attrs.frozen
class KubeApis:
    """The process's clients: reconciler, the two informers, the leader elector."""

    main: KubeClient
    sources: KubeClient
    artifacts: KubeClient
    secrets: KubeClient
    leader: KubeClient

    @classmethod
    async def connect(
        cls,
        *,
        qps: float | None,
        burst: int | None,
        environ: Mapping[str, str],
        url: str | None = None,
        kubeconfig: str | Mapping[str, Any] | None = None,
    ) -> KubeApis:
        """Clients on the kubeconfig (`KUBECONFIG`) or in-cluster credentials.

        `qps`/`burst` given explicitly keep the client-side limit on; unset, it
        applies only until API Priority and Fairness is detected.
        """
        credentials = await Credentials.load(
            url=url, kubeconfig=kubeconfig, namespace=runtime_namespace(environ)
        )
        limiter = ClientRateLimiter(
            qps=qps if qps is not None else DEFAULT_QPS,
            burst=burst if burst is not None else DEFAULT_BURST,
            explicit=qps is not None or burst is not None,
        )
        main = KubeClient(credentials, limiter=limiter, name="reconciler")
        return cls(
            main=main,
            sources=main.clone("informer-sources"),
            artifacts=main.clone("informer-artifacts"),
            secrets=main.clone("informer-secrets"),
            leader=main.clone("leader-election", limited=False),
        )

    async def aclose(self) -> None:
        for client in (self.main, self.sources, self.artifacts, self.secrets, self.leader):
            await client.aclose()
