"""`ControllerSettings`: the runtime's flags, with Flux's names and defaults.

Each field's metadata is the whole user-facing description of a setting —
`flag`, `help`, `duration` (seconds given as a Go duration such as `30s`)
and `choices` — from which `controller/config.py` builds `--help`, the
`EXTERNALSOURCE_*` environment variables, the YAML keys and docs/configuration.md.
Validators name the flag in their message: a bad value stops start-up with one
line a user can act on.
"""

from __future__ import annotations

from typing import Any

import attrs

from controller.api.names import WATCH_LABEL


def _at_least(minimum: float, maximum: float | None = None) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else ""
            raise ValueError(
                f"{attribute.metadata['flag']}: must be {bound or f'at least {minimum:g}'}"
            )

    return check


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.metadata['flag']}: must be greater than zero")


def _flag(flag: str, help_text: str, **extra: Any) -> dict[str, Any]:
    return {"flag": flag, "help": help_text, **extra}


@attrs.frozen
class ControllerSettings:
    """Process, runtime and Kubernetes-client settings of the controller."""

    config: str | None = attrs.field(
        default=None,
        metadata=_flag("--config", "Path of a YAML file of settings (keys are flag names)."),
    )
    concurrent: int = attrs.field(
        default=4,
        validator=_at_least(1),
        metadata=_flag("--concurrent", "Number of sources reconciled at the same time."),
    )
    health_addr: str = attrs.field(
        default=":9440",
        metadata=_flag("--health-addr", "Address of the /healthz and /readyz endpoints."),
    )
    metrics_addr: str = attrs.field(
        default=":8080", metadata=_flag("--metrics-addr", "Address of the /metrics endpoint.")
    )
    enable_leader_election: bool = attrs.field(
        default=False,
        metadata=_flag(
            "--enable-leader-election",
            "Elect a leader through a Lease; only the leader reconciles and serves artifacts.",
        ),
    )
    leader_election_lease_duration: float = attrs.field(
        default=35.0,
        validator=_positive,
        metadata=_flag(
            "--leader-election-lease-duration",
            "How long a non-leader waits after the last renewal before taking the lease.",
            duration=True,
        ),
    )
    leader_election_renew_deadline: float = attrs.field(
        default=30.0,
        validator=_positive,
        metadata=_flag(
            "--leader-election-renew-deadline",
            "How long the leader keeps retrying a renewal before giving up leadership.",
            duration=True,
        ),
    )
    leader_election_retry_period: float = attrs.field(
        default=5.0,
        validator=_positive,
        metadata=_flag(
            "--leader-election-retry-period",
            "How often candidates try to take or renew the lease.",
            duration=True,
        ),
    )
    leader_election_namespace: str | None = attrs.field(
        default=None,
        metadata=_flag(
            "--leader-election-namespace",
            "Namespace of the Lease (default: RUNTIME_NAMESPACE, POD_NAMESPACE, then the "
            "kubeconfig namespace).",
        ),
    )
    watch_all_namespaces: bool = attrs.field(
        default=True,
        metadata=_flag(
            "--watch-all-namespaces",
            "Watch sources in all namespaces; when false only in RUNTIME_NAMESPACE.",
        ),
    )
    watch_label_selector: str = attrs.field(
        default="",
        metadata=_flag(
            "--watch-label-selector",
            "Only watch sources with these labels (sharding, e.g. sharding.fluxcd.io/key=shard1).",
        ),
    )
    watch_configs_label_selector: str = attrs.field(
        default=f"{WATCH_LABEL}=Enabled",
        metadata=_flag(
            "--watch-configs-label-selector",
            "Watch Secrets with these labels: a change reconciles the sources that use them at "
            "once, and they are read from the cache (empty: no watch, Secrets read with GET).",
        ),
    )
    min_retry_delay: float = attrs.field(
        default=1.0,
        validator=_positive,
        metadata=_flag(
            "--min-retry-delay", "First delay of the per-source retry backoff.", duration=True
        ),
    )
    max_retry_delay: float = attrs.field(
        default=300.0,
        validator=_positive,
        metadata=_flag(
            "--max-retry-delay", "Longest delay of the per-source retry backoff.", duration=True
        ),
    )
    interval_jitter_percentage: int = attrs.field(
        default=5,
        validator=_at_least(0, 99),
        metadata=_flag(
            "--interval-jitter-percentage",
            "Spread each source's interval randomly by up to this percentage (0-99).",
        ),
    )
    progress_report_delay: float = attrs.field(
        default=1.0,
        validator=_at_least(0),
        metadata=_flag(
            "--progress-report-delay",
            "Write progress conditions (Fetching, ExecutingHooks, Storing) only when a change "
            "is still being fetched or processed after this long.",
            duration=True,
        ),
    )
    kube_api_qps: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_positive),
        metadata=_flag(
            "--kube-api-qps",
            "Sustained requests per second to the Kubernetes API (unset: 50 until the API "
            "server shows it runs API Priority and Fairness, then no client-side limit).",
        ),
    )
    kube_api_burst: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_at_least(1)),
        metadata=_flag(
            "--kube-api-burst",
            "Burst of requests to the Kubernetes API (unset: 300, off under API Priority "
            "and Fairness like --kube-api-qps).",
        ),
    )
    log_level: str = attrs.field(
        default="info",
        metadata=_flag("--log-level", "Log verbosity.", choices=["debug", "info", "warn", "error"]),
    )
    log_encoding: str | None = attrs.field(
        default=None,
        metadata=_flag(
            "--log-encoding",
            "Log format (default: console on a terminal, json otherwise).",
            choices=["json", "console"],
        ),
    )
    events_addr: str = attrs.field(
        default="",
        metadata=_flag(
            "--events-addr", "URL of Flux's notification-controller to post events to (optional)."
        ),
    )
    no_cross_namespace_refs: bool = attrs.field(
        default=True,
        metadata=_flag(
            "--no-cross-namespace-refs",
            "Refuse references to objects in another namespace than the source's.",
        ),
    )
    graceful_shutdown_timeout: float = attrs.field(
        default=20.0,
        validator=_at_least(0),
        metadata=_flag(
            "--graceful-shutdown-timeout",
            "On SIGTERM, how long in-flight reconciles may run before they are cancelled; "
            "releasing the lease takes up to 3s more (keep the sum below the pod's "
            "terminationGracePeriodSeconds).",
            duration=True,
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.leader_election_renew_deadline >= self.leader_election_lease_duration:
            raise ValueError(
                "--leader-election-renew-deadline: must be shorter than "
                "--leader-election-lease-duration"
            )
        if self.leader_election_retry_period * 1.2 >= self.leader_election_renew_deadline:
            raise ValueError(
                "--leader-election-retry-period: must be shorter than "
                "--leader-election-renew-deadline / 1.2"
            )
        if self.min_retry_delay > self.max_retry_delay:
            raise ValueError("--min-retry-delay: must not exceed --max-retry-delay")
