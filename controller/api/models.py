"""Typed models of the ExternalSource API (the reconciler works on them; the ExternalArtifact is
built as plain JSON by `controller.children`, which owns only a few of its fields).

attrs classes with snake_case attributes; `controller.api.wire` maps them to
the camelCase wire form (a field whose wire name is not plain camelCase says
so in its metadata, e.g. `lastHandledETag`). Defaults are the CRD's defaults,
so a spec parsed here means what the API server would have stored; a test
walks the CRD schema and these classes to keep fields, enums and defaults
identical. Durations and timestamps stay the strings users wrote (`5m`,
RFC 3339), so an object round-trips byte for byte; the `*_seconds`
properties give the parsed values.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import attrs

from controller.api import names
from controller.api.durations import parse_duration

GeneratorType = Literal["http", "s3"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
RetryPolicy = Literal["ignore", "retry", "fail"]
ConditionStatus = Literal["True", "False", "Unknown"]

GENERATOR_TYPES: tuple[str, ...] = get_args(GeneratorType)
HTTP_METHODS: tuple[str, ...] = get_args(HttpMethod)
RETRY_POLICIES: tuple[str, ...] = get_args(RetryPolicy)

DEFAULT_TIMEOUT = "60s"
DEFAULT_DESTINATION_PATH = "data"
DEFAULT_MAX_RETRIES = 3
DEFAULT_HOOK_TIMEOUT = "30s"
DEFAULT_CA_KEY = "ca.crt"


def wire_name(name: str) -> Any:
    """Field metadata for a wire name that plain camelCase would get wrong."""
    return {"wire": name}


# --- metadata -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@attrs.frozen(kw_only=True)
class ObjectMeta:
    """The metadata fields the controller uses; any other key is kept in `extra` verbatim."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


# --- spec -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LocalObjectReference:
    """A Secret in the source's own namespace (no namespace field: tenant isolation)."""

    name: str


@attrs.frozen(kw_only=True)
class SecretKeyReference:
    name: str
    key: str = DEFAULT_CA_KEY


@attrs.frozen(kw_only=True)
class HttpGeneratorSpec:
    url: str
    method: HttpMethod = "GET"
    body: str | None = None
    headers_secret_ref: LocalObjectReference | None = None
    ca_bundle_secret_ref: SecretKeyReference | None = None
    cert_secret_ref: LocalObjectReference | None = None
    proxy_secret_ref: LocalObjectReference | None = None
    insecure_skip_verify: bool = False


@attrs.frozen(kw_only=True)
class S3GeneratorSpec:
    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    credentials_secret_ref: LocalObjectReference | None = None
    ca_bundle_secret_ref: SecretKeyReference | None = None
    path_style: bool = False
    insecure_skip_verify: bool = False


@attrs.frozen(kw_only=True)
class GeneratorSpec:
    type: GeneratorType
    http: HttpGeneratorSpec | None = None
    s3: S3GeneratorSpec | None = None


@attrs.frozen(kw_only=True)
class EnvVar:
    name: str
    value: str | None = None


@attrs.frozen(kw_only=True)
class Hook:
    name: str
    command: str
    args: list[str] = attrs.field(factory=list)
    env: list[EnvVar] = attrs.field(factory=list)
    timeout: str = DEFAULT_HOOK_TIMEOUT
    retry_policy: RetryPolicy = "fail"

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


@attrs.frozen(kw_only=True)
class HooksSpec:
    pre_request: list[Hook] = attrs.field(factory=list)
    post_request: list[Hook] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class TransformSpec:
    cel: str


@attrs.frozen(kw_only=True)
class ExternalSourceSpec:
    interval: str
    timeout: str = DEFAULT_TIMEOUT
    suspend: bool = False
    destination_path: str = DEFAULT_DESTINATION_PATH
    max_retries: int = DEFAULT_MAX_RETRIES
    generator: GeneratorSpec
    hooks: HooksSpec | None = None
    transform: TransformSpec | None = None

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


# --- status ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Condition:
    """metav1.Condition."""

    type: str
    status: ConditionStatus
    observed_generation: int | None = None
    last_transition_time: str
    reason: str
    message: str


@attrs.frozen(kw_only=True)
class Artifact:
    """Flux's meta.Artifact: what consumers download and verify."""

    path: str
    url: str
    revision: str
    digest: str
    size: int | None = None
    last_update_time: str
    metadata: dict[str, str] | None = None


@attrs.frozen(kw_only=True)
class ExternalSourceStatus:
    observed_generation: int = -1
    conditions: list[Condition] = attrs.field(factory=list)
    artifact: Artifact | None = None
    last_handled_etag: str | None = attrs.field(default=None, metadata=wire_name("lastHandledETag"))
    last_handled_reconcile_at: str | None = None


@attrs.frozen(kw_only=True)
class ExternalSource:
    api_version: str = names.API_VERSION
    kind: str = names.KIND
    metadata: ObjectMeta = attrs.field(factory=ObjectMeta)
    spec: ExternalSourceSpec
    status: ExternalSourceStatus = attrs.field(factory=ExternalSourceStatus)
