"""The reconcile of one ExternalSource: the only place that knows the order of the pipeline.

docs/architecture.md ("One reconcile") draws it; the steps are methods here:

    _reconcile      cache read → deletion → finalizer → suspend → typed spec
    _sync           _can_skip_fetch → Secrets → _fetch_and_package → _publish → _report
    _fail           one place for every failure a user should see

Three promises shape it:

* The fast path writes nothing. When the spec generation was handled, the
  published artifact is still in storage, no reconcile was requested and the
  origin says "not modified", the reconcile ends with a jittered requeue and
  zero API writes — after checking, from the informer's cache, that the
  ExternalArtifact still publishes that artifact (a deleted or edited child
  is repaired without a fetch).
* The last good artifact stays published and served. Failures change
  conditions only; `status.artifact` and the stored file are never withdrawn.
* Errors say what to do. Every room's errors satisfy `pipeline.Failure`
  (message, reason, transient, retry_after): transient ones retry with
  backoff (`Reconciling=True`, `ProgressingWithRetry`), the rest stall until
  the spec changes (`Stalled=True`). A fault of the Kubernetes API itself
  (401, 403, 429, 5xx, connection) is not the source's fault: it is logged
  and retried, and never flips `Ready` or writes status.

Writes of a new source: the finalizer, the ExternalArtifact and its `/status`,
one final ExternalSource `/status`; a progress patch only when a change path
is still running after `--progress-report-delay`; Events go through the
recorder's queue, off this path. Every message written is scrubbed of the
Secret values this reconcile read (`controller.redaction`).
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import structlog

from controller import conditions as cond
from controller import metrics, redaction
from controller.api import names, reasons
from controller.api.models import ExternalSourceSpec
from controller.api.parsing import parse_spec
from controller.children import ExternalArtifactSync
from controller.events import EventRecorder
from controller.fetchrequest import SecretReader, build_request
from controller.logging import reconcile_context
from controller.patches import apply, merge_diff
from controller.pipeline import CelCache, Failure, Produced, produce
from controller.progress import ProgressReport
from controller.publishing import ArtifactStore, Retention
from controller.runtime.client import ApiError, KubeClient
from controller.runtime.keys import ObjectKey
from controller.runtime.worker import Key, Result
from generators.base import NotModified, SourceGenerator, Validators
from generators.requests import HttpRequest, S3ObjectRequest
from hooks.cel import DEFAULT_MAX_MEMORY
from hooks.runner import HookRunner
from storage.backend import StorageBackend

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
Lookup = Callable[[ObjectKey], JSON | None]


class Outcome(enum.Enum):
    """How a reconcile ended (the `result` label of the reconcile metrics)."""

    SUCCESS = "success"
    NOT_MODIFIED = "not_modified"
    SUSPENDED = "suspended"
    STALLED = "stalled"
    ERROR = "error"
    DELETED = "deleted"


@attrs.frozen
class ReconcilerSettings:
    retention: Retention
    interval_jitter_percentage: float = 5.0
    spool_dir: str | None = None
    cel_timeout: float = 10.0
    cel_max_input_size: int = 16 * 1024 * 1024
    cel_max_memory: int = DEFAULT_MAX_MEMORY
    progress_report_delay: float = 1.0


@attrs.frozen
class Collaborators:
    """What a reconcile talks to (built once by controller.wiring)."""

    kube: KubeClient
    sources: Lookup
    artifacts: Lookup
    secrets: SecretReader
    generators: Mapping[str, SourceGenerator]
    runner: HookRunner
    storage: StorageBackend
    events: EventRecorder


class Reconciler:
    def __init__(self, parts: Collaborators, settings: ReconcilerSettings) -> None:
        self._kube = parts.kube
        self._lookup = parts.sources
        self._parts = parts
        self._store = ArtifactStore(parts.storage, settings.retention)
        self._events = parts.events
        self._settings = settings
        self._children = ExternalArtifactSync(parts.kube, parts.artifacts)
        self._cel = CelCache(
            timeout=settings.cel_timeout,
            max_input_size=settings.cel_max_input_size,
            max_memory=settings.cel_max_memory,
        )
        self._specs: dict[ObjectKey, tuple[int, ExternalSourceSpec]] = {}

    async def reconcile(self, key: Key) -> Result:
        started = time.perf_counter()
        with reconcile_context(key.namespace, key.name), redaction.scope():
            try:
                outcome, result = await self._reconcile(key)
            except ApiError as err:
                outcome, result = await self._api_fault(key, err)
        if outcome is Outcome.DELETED:
            metrics.forget(namespace=key.namespace, name=key.name)
            self._specs.pop(key, None)
            self._children.forget(key)
            metrics.RECONCILE_TOTAL.labels(outcome.value).inc()
        else:
            seconds = time.perf_counter() - started
            metrics.observe(
                namespace=key.namespace, name=key.name, result=outcome.value, seconds=seconds
            )
        return result

    async def _reconcile(self, key: Key) -> tuple[Outcome, Result]:
        obj = self._lookup(key)
        if obj is None:
            return Outcome.DELETED, Result()
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if names.FINALIZER in (meta.get("finalizers") or ()):
                await self._finalize(obj)
            return Outcome.DELETED, Result()
        if names.FINALIZER not in (meta.get("finalizers") or ()):
            obj = await self._add_finalizer(obj)
        if (obj.get("spec") or {}).get("suspend"):
            log.info("reconciliation is suspended")
            return Outcome.SUSPENDED, Result()
        try:
            spec = self._typed_spec(key, obj)
            return await self._sync(obj, spec)
        except Exception as err:
            if isinstance(err, ApiError) or not isinstance(err, Failure):
                raise
            await self._fail(obj, reason=err.reason, message=err.message, transient=err.transient)
            if not err.transient:
                return Outcome.STALLED, Result()
            return Outcome.ERROR, Result(retry=True, retry_after=err.retry_after)

    async def _api_fault(self, key: Key, err: ApiError) -> tuple[Outcome, Result]:
        """The API server failed us: retry with backoff, write nothing, blame no source."""
        if err.status == 404 and await self._kube.get(names.EXTERNAL_SOURCES, *key) is None:
            return Outcome.DELETED, Result()  # deleted while we worked: nothing left to do
        if err.status == 403:
            log.error("Kubernetes API refused a request (RBAC)", error=err.message)
        else:
            log.warning("Kubernetes API error; retrying", error=err.message)
        return Outcome.ERROR, Result(retry=True, retry_after=err.retry_after)

    def _typed_spec(self, key: Key, obj: JSON) -> ExternalSourceSpec:
        """The validated, typed spec, parsed once per generation."""
        generation = obj["metadata"].get("generation", 1)
        cached = self._specs.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        spec = parse_spec(obj.get("spec"))
        self._specs[key] = (generation, spec)
        return spec

    async def _sync(self, obj: JSON, spec: ExternalSourceSpec) -> tuple[Outcome, Result]:
        meta, status = obj["metadata"], obj.get("status") or {}
        published: JSON = status.get("artifact") or {}
        present = bool(published) and await self._store.is_present(published)
        fast = present and self._can_skip_fetch(obj)
        request = await build_request(
            self._parts.secrets,
            namespace=meta["namespace"],
            generator=spec.generator,
            timeout=spec.timeout_seconds,
        )
        previous = None
        if fast:
            last_modified = (published.get("metadata") or {}).get("last-modified")
            previous = Validators(etag=status.get("lastHandledETag"), last_modified=last_modified)
        produced = await self._fetch_and_package(obj, spec, request, previous)
        if isinstance(produced, NotModified):
            log.debug("origin not modified")
            await self._children.sync(obj, published)  # repairs a deleted or edited child
            self._succeeded_events(obj, spec)
            return Outcome.NOT_MODIFIED, Result(requeue_after=self._next_run(spec))
        with produced.artifact.file:
            artifact = await self._publish(obj, produced, present=present)
        ea = await self._children.sync(obj, artifact)
        await self._report(obj, spec, artifact=artifact, produced=produced, ea=ea)
        return Outcome.SUCCESS, Result(requeue_after=self._next_run(spec))

    @staticmethod
    def _can_skip_fetch(obj: JSON) -> bool:
        """Step 6 (with the artifact in storage): this generation's last reconcile succeeded
        and no reconcile is requested."""
        meta, status = obj["metadata"], obj.get("status") or {}
        requested = (meta.get("annotations") or {}).get(names.REQUESTED_AT_ANNOTATION)
        return (
            status.get("observedGeneration") == meta.get("generation", 1)
            and (requested is None or requested == status.get("lastHandledReconcileAt"))
            and cond.is_true(status.get("conditions") or [], reasons.READY)
        )

    async def _fetch_and_package(
        self,
        obj: JSON,
        spec: ExternalSourceSpec,
        request: HttpRequest | S3ObjectRequest,
        previous: Validators | None,
    ) -> NotModified | Produced:
        """Steps 8-11, with progress conditions written only if this runs long."""
        progress = ProgressReport(
            delay=self._settings.progress_report_delay,
            write=lambda phase: self._write_progress(obj, phase),
        )
        if previous is None:
            progress.phase(reasons.FETCHING)
        async with progress:
            return await produce(
                generator=self._parts.generators[spec.generator.type],
                request=request,
                previous=previous,
                runner=self._parts.runner,
                spec=spec,
                cel=await self._cel.get(spec.transform.cel) if spec.transform else None,
                spool_dir=self._settings.spool_dir,
                on_phase=progress.phase,
            )

    async def _publish(self, obj: JSON, produced: Produced, *, present: bool) -> JSON:
        """Steps 12-13: the artifact in storage (docs/architecture.md)."""
        meta = obj["metadata"]
        return await self._store.publish(
            namespace=meta["namespace"],
            name=meta["name"],
            produced=produced,
            published=(obj.get("status") or {}).get("artifact"),
            present=present,
        )

    async def _report(
        self, obj: JSON, spec: ExternalSourceSpec, *, artifact: JSON, produced: Produced, ea: JSON
    ) -> None:
        """Step 15: one status write, events, metrics."""
        meta, status = obj["metadata"], obj.get("status") or {}
        generation = meta.get("generation", 1)
        previous = (status.get("artifact") or {}).get("revision")
        message = f"stored artifact for revision '{artifact['revision']}'"
        if _insecure(spec):
            message += "; WARNING: TLS verification is disabled (insecureSkipVerify)"
        changes: JSON = {
            "observedGeneration": generation,
            "conditions": cond.succeeded(
                status.get("conditions") or [], message=message, generation=generation
            ),
            "artifact": artifact,
            "lastHandledETag": produced.validators.etag,
        }
        await self._patch_status(obj, self._with_handled_request(obj, changes))
        metrics.SOURCE_READY.labels(meta["namespace"], meta["name"]).set(1)
        metrics.ARTIFACT_SIZE.labels(meta["namespace"], meta["name"]).set(artifact["size"])
        if previous != artifact["revision"]:
            log.info("new artifact", revision=artifact["revision"])
            new = f"stored artifact with revision '{artifact['revision']}'"
            # one Kubernetes Event (on the source); Flux's notification-controller also hears
            # it about the ExternalArtifact, the kind its Alerts can select
            for target, notification_only in ((obj, False), (ea, True)):
                self._events.normal(
                    target,
                    reason=reasons.NEW_ARTIFACT,
                    message=new,
                    revision=artifact["revision"],
                    notification_only=notification_only,
                )
        self._succeeded_events(obj, spec)

    def _succeeded_events(self, obj: JSON, spec: ExternalSourceSpec) -> None:
        self._events.resolved(obj)
        self._events.standing_warning(
            obj,
            reason="InsecureSkipVerify",
            message="TLS verification is disabled",
            active=_insecure(spec),
        )

    async def _fail(self, obj: JSON, *, reason: str, message: str, transient: bool) -> None:
        """Ready=False with the problem (scrubbed); the last artifact stays published."""
        meta, status = obj["metadata"], obj.get("status") or {}
        generation = meta.get("generation", 1)
        message = redaction.scrub(message)
        conditions = cond.failed(
            status.get("conditions") or [],
            reason=reason,
            message=message,
            transient=transient,
            generation=generation,
        )
        log.warning("reconcile failed", reason=reason, error=message, transient=transient)
        metrics.SOURCE_READY.labels(meta["namespace"], meta["name"]).set(0)
        changes = {"conditions": conditions, "observedGeneration": generation}
        await self._patch_status(obj, self._with_handled_request(obj, changes))
        if reason != reasons.ARTIFACT_CONFLICT:
            await self._children.mark_failed(obj, reason=reason, message=message)
        self._events.warning(obj, reason=reason, message=message)

    async def _write_progress(self, obj: JSON, phase: str) -> None:
        status = obj.get("status") or {}
        generation = obj["metadata"].get("generation", 1)
        conditions = cond.progressing(
            status.get("conditions") or [], phase=phase, generation=generation
        )
        await self._patch_status(obj, {"conditions": conditions})

    async def _patch_status(self, obj: JSON, changes: Mapping[str, Any]) -> None:
        """One merge patch of /status with only what changed (removed keys as null)."""
        status = obj.get("status") or {}
        patch = merge_diff(status, {**status, **changes})
        if not patch:
            return
        meta = obj["metadata"]
        updated = await self._kube.patch(
            names.EXTERNAL_SOURCES,
            meta["namespace"],
            meta["name"],
            {"status": patch},
            subresource="status",
        )
        obj["status"] = updated.get("status") or apply(status, patch)

    @staticmethod
    def _with_handled_request(obj: JSON, changes: JSON) -> JSON:
        """`lastHandledReconcileAt`, on success and failure alike (`annotate and wait` works)."""
        requested = (obj["metadata"].get("annotations") or {}).get(names.REQUESTED_AT_ANNOTATION)
        if requested is not None:
            changes["lastHandledReconcileAt"] = requested
        return changes

    async def _add_finalizer(self, obj: JSON) -> JSON:
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "finalizers": [*(meta.get("finalizers") or ()), names.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        return await self._kube.patch(
            names.EXTERNAL_SOURCES, meta["namespace"], meta["name"], patch
        )

    async def _finalize(self, obj: JSON) -> None:
        """Deletion: remove artifacts and the ExternalArtifact, then our finalizer."""
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        await self._store.delete(namespace=namespace, name=name)
        await self._children.delete(obj)
        patch = {
            "metadata": {
                "finalizers": [f for f in meta.get("finalizers") or () if f != names.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        await self._kube.patch(names.EXTERNAL_SOURCES, namespace, name, patch)
        self._events.forget(obj)
        log.info("artifacts removed; finalizer released")

    def _next_run(self, spec: ExternalSourceSpec) -> float:
        spread = self._settings.interval_jitter_percentage / 100.0
        jitter = random.uniform(-spread, spread)  # noqa: S311 - scheduling jitter
        return spec.interval_seconds * (1 + jitter)


def _insecure(spec: ExternalSourceSpec) -> bool:
    generator = spec.generator.http or spec.generator.s3
    return bool(generator and generator.insecure_skip_verify)
