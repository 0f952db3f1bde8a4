"""The reconcile pipeline: ExternalSource → fetch → hooks → tar.gz → storage → ExternalArtifact.

This module is the only place that knows the order of the pipeline (SPEC §4).
Its shape follows three promises made to users:

* The fast path writes nothing. When the spec generation was handled, the
  published artifact is still in storage, no reconcile was requested and the
  origin says "not modified", the reconcile ends with zero API writes and a
  jittered requeue. Everything before the fetch is a read.
* The last good artifact stays published and served. Failures change
  conditions only; `status.artifact` and the stored file are never withdrawn
  because a fetch, a hook or a write failed.
* Errors say what to do. Leaf rooms raise errors carrying a condition reason,
  a human message and `transient`; transient ones retry with backoff
  (`Reconciling=True`, `ProgressingWithRetry`), the rest stall until the spec
  changes (`Stalled=True`).

Status is written at most twice on a change path (one progress patch, one
final patch) and not at all when nothing changed.
"""

from __future__ import annotations

import io
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs
import structlog

from controller import conditions as cond
from controller import metrics
from controller.api import reasons
from controller.api.durations import parse_duration
from controller.api.validation import validate_spec
from controller.children import ArtifactConflictError, ExternalArtifactSync
from controller.events import EventRecorder
from controller.fetchrequest import (
    SecretNotFoundError,
    SecretReader,
    apply_description,
    build_request,
    request_description,
)
from controller.resources import EXTERNAL_SOURCES, ApiError, KubeClient
from controller.runtime.worker import Key, Result
from generators.base import FetchError, NotModified, SourceGenerator, Validators
from generators.requests import HttpRequest, S3ObjectRequest
from hooks.cel import CelTransform, compile_transform
from hooks.runner import HookRunner
from hooks.spec import HookError, HookSpec, RetryBudget
from storage.backend import StorageBackend, StorageError
from storage.naming import artifact_key, artifact_url, revision, source_prefix
from storage.packaging import PackagedArtifact, package_async
from storage.retention import collect_garbage, delete_source

log = structlog.get_logger(__name__)

PipelineError = FetchError | StorageError | HookError | ApiError | SecretNotFoundError


@attrs.frozen
class ReconcilerSettings:
    advertised_address: str
    retention_records: int = 2
    retention_ttl: float = 60.0
    interval_jitter_percentage: float = 5.0
    spool_dir: str | None = None
    cel_timeout: float = 10.0
    cel_max_input_size: int = 16 * 1024 * 1024


@attrs.frozen
class Produced:
    """A packaged artifact and what the origin said about it."""

    artifact: PackagedArtifact
    validators: Validators
    metadata: Mapping[str, str]


def parse_hooks(items: Sequence[Mapping[str, Any]] | None) -> list[HookSpec]:
    return [
        HookSpec(
            name=h["name"],
            command=h["command"],
            args=tuple(str(a) for a in h.get("args") or ()),
            env={e["name"]: str(e.get("value", "")) for e in h.get("env") or ()},
            timeout=parse_duration(h.get("timeout") or "30s"),
            retry_policy=h.get("retryPolicy") or "fail",
        )
        for h in items or ()
    ]


async def produce(
    *,
    generator: SourceGenerator,
    request: HttpRequest | S3ObjectRequest,
    previous: Validators | None,
    runner: HookRunner,
    spec: Mapping[str, Any],
    budget: RetryBudget,
    cel: CelTransform | None,
    spool_dir: str | None,
    on_change: Callable[[str], Any] | None = None,
) -> NotModified | Produced:
    """Steps 8-11 of the pipeline, shared by the controller and `externalsource fetch`.

    `on_change(phase)` is awaited once, when the origin reported a change, so the
    caller can show progress without writing anything on the fast path.
    """
    hooks = spec.get("hooks") or {}
    pre, post = parse_hooks(hooks.get("preRequest")), parse_hooks(hooks.get("postRequest"))
    if pre and isinstance(request, HttpRequest):
        described = await runner.run_pre(request_description(request), pre, budget)
        request = apply_description(request, described)
    fetched = await generator.fetch(request, previous)
    if isinstance(fetched, NotModified):
        return fetched
    with fetched:
        if on_change is not None:
            await on_change(reasons.EXECUTING_HOOKS if post or cel else reasons.STORING)
        data: IO[bytes] = fetched.body
        if post or cel:
            body = data.read()
            if post:
                body = await runner.run_post(body, post, budget)
            if cel is not None:
                body = await cel.apply(body)
            data = io.BytesIO(body)
        packaged = await package_async(
            data, spec.get("destinationPath") or "data", spool_dir=spool_dir
        )
    return Produced(artifact=packaged, validators=fetched.validators, metadata=fetched.metadata)


class Reconciler:
    def __init__(
        self,
        *,
        kube: KubeClient,
        lookup: Callable[[Key], dict[str, Any] | None],
        secrets: SecretReader,
        generators: Mapping[str, SourceGenerator],
        runner: HookRunner,
        storage: StorageBackend,
        events: EventRecorder,
        settings: ReconcilerSettings,
    ) -> None:
        self._kube = kube
        self._lookup = lookup
        self._secrets = secrets
        self._generators = generators
        self._runner = runner
        self._storage = storage
        self._events = events
        self._settings = settings
        self._children = ExternalArtifactSync(kube)
        # artifact key -> digest known to be in storage (written or verified by this process);
        # bounded by sources x retention records, pruned on GC and deletion.
        self._present: dict[str, str] = {}
        self._cel: dict[str, CelTransform] = {}

    async def reconcile(self, key: Key) -> Result:
        namespace, name = key
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            namespace=namespace, name=name, reconcile_id=uuid.uuid4().hex[:12]
        ):
            try:
                label, result = await self._reconcile(key)
            except ApiError as err:  # finalizer writes; the pipeline's own errors are handled
                if err.status == 404:  # deleted under us (a stale cache entry): nothing to do
                    label, result = "deleted", Result()
                else:
                    log.warning("kubernetes API error", error=err.message)
                    label, result = "error", Result(retry=True)
        seconds = time.perf_counter() - started
        if label == "deleted":
            metrics.forget(namespace=namespace, name=name)
            metrics.RECONCILE_TOTAL.labels(label).inc()
        else:
            metrics.observe(namespace=namespace, name=name, result=label, seconds=seconds)
        return result

    async def _reconcile(self, key: Key) -> tuple[str, Result]:
        obj = self._lookup(key)
        if obj is None:
            return "deleted", Result()
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if reasons.FINALIZER in (meta.get("finalizers") or ()):
                await self._finalize(obj)
            return "deleted", Result()
        if reasons.FINALIZER not in (meta.get("finalizers") or ()):
            obj = await self._add_finalizer(obj)
        spec = obj.get("spec") or {}
        if spec.get("suspend"):
            log.info("reconciliation is suspended")
            return "suspended", Result()
        problems = validate_spec(spec)
        if problems:
            message = "; ".join(f"{p.path}: {p.message}" for p in problems)
            await self._fail(obj, reason=reasons.INVALID_SPEC, message=message, transient=False)
            return "stalled", Result()
        try:
            return await self._sync(obj, spec)
        except ArtifactConflictError as err:
            await self._fail(
                obj, reason=reasons.ARTIFACT_CONFLICT, message=err.message, transient=True
            )
            return "error", Result(retry=True)
        except (FetchError, StorageError, HookError, ApiError, SecretNotFoundError) as err:
            transient = bool(err.transient)
            reason = getattr(err, "reason", reasons.FETCH_FAILED)
            if isinstance(err, ApiError):
                reason = reasons.API_ERROR
            await self._fail(obj, reason=reason, message=err.message, transient=transient)
            if not transient:
                return "stalled", Result()
            return "error", Result(retry=True, retry_after=getattr(err, "retry_after", None))

    async def _sync(self, obj: dict[str, Any], spec: Mapping[str, Any]) -> tuple[str, Result]:
        meta, status = obj["metadata"], obj.get("status") or {}
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation", 1)
        published = status.get("artifact")
        requested = (meta.get("annotations") or {}).get(reasons.REQUESTED_AT_ANNOTATION)
        present = published is not None and await self._is_present(published)
        conditions = status.get("conditions") or []
        fast = (
            status.get("observedGeneration") == generation
            and present
            and (requested is None or requested == status.get("lastHandledReconcileAt"))
            and cond.is_true(conditions, reasons.READY)
        )
        interval = parse_duration(spec["interval"])
        request = await build_request(
            self._secrets,
            namespace=namespace,
            spec=spec,
            timeout=parse_duration(spec.get("timeout") or "60s"),
        )
        previous = None
        if fast:
            last_modified = ((published or {}).get("metadata") or {}).get("last-modified")
            previous = Validators(etag=status.get("lastHandledETag"), last_modified=last_modified)

        async def progress(phase: str) -> None:
            nonlocal conditions
            conditions = cond.progressing(conditions, phase=phase, generation=generation)
            await self._patch_status(obj, {"conditions": conditions})

        if not fast:
            await progress(reasons.FETCHING)
        produced = await produce(
            generator=self._generators[spec["generator"]["type"]],
            request=request,
            previous=previous,
            runner=self._runner,
            spec=spec,
            budget=RetryBudget(int(spec.get("maxRetries", 3))),
            cel=self._compiled_cel(spec),
            spool_dir=self._settings.spool_dir,
            on_change=progress if fast else None,
        )
        if isinstance(produced, NotModified):
            log.debug("origin not modified")
            return "not_modified", Result(requeue_after=self._next_run(interval))
        with produced.artifact.file:
            artifact = await self._store(obj, produced, published=published, present=present)
        ea = await self._children.sync(obj, artifact)
        message = f"stored artifact for revision '{artifact['revision']}'"
        if _insecure(spec):
            message += "; WARNING: TLS verification is disabled (insecureSkipVerify)"
        final = cond.succeeded(conditions, message=message, generation=generation)
        new_status: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": final,
            "artifact": artifact,
            "lastHandledETag": produced.validators.etag,
        }
        if requested is not None:
            new_status["lastHandledReconcileAt"] = requested
        await self._patch_status(obj, new_status)
        metrics.SOURCE_READY.labels(namespace, name).set(1)
        metrics.ARTIFACT_SIZE.labels(namespace, name).set(artifact["size"])
        if (published or {}).get("revision") != artifact["revision"]:
            message = f"stored artifact with revision '{artifact['revision']}'"
            log.info("new artifact", revision=artifact["revision"])
            await self._events.normal(
                obj, reason=reasons.NEW_ARTIFACT, message=message, revision=artifact["revision"]
            )
            await self._events.normal(
                ea, reason=reasons.NEW_ARTIFACT, message=message, revision=artifact["revision"]
            )
        if _insecure(spec):
            await self._events.warning(
                obj, reason="InsecureSkipVerify", message="TLS verification is disabled"
            )
        return "success", Result(requeue_after=self._next_run(interval))

    async def _store(
        self,
        obj: dict[str, Any],
        produced: Produced,
        *,
        published: Mapping[str, Any] | None,
        present: bool,
    ) -> dict[str, Any]:
        """Steps 12-13: store unless the same bytes are already published; then GC."""
        meta = obj["metadata"]
        packaged = produced.artifact
        key = artifact_key(meta["namespace"], meta["name"], packaged.hex)
        if published and published.get("digest") == packaged.digest and present:
            return dict(published) | {"metadata": _artifact_metadata(produced)}
        await self._storage.put(key, packaged.file)
        self._present[key] = packaged.digest
        removed = await collect_garbage(
            self._storage,
            namespace=meta["namespace"],
            name=meta["name"],
            current_key=key,
            keep_records=self._settings.retention_records,
            ttl=self._settings.retention_ttl,
        )
        for old in removed:
            self._present.pop(old, None)
        return {
            "path": key,
            "url": artifact_url(self._settings.advertised_address, key),
            "revision": revision(packaged.hex),
            "digest": packaged.digest,
            "size": packaged.size,
            "lastUpdateTime": cond.now_rfc3339(),
            "metadata": _artifact_metadata(produced),
        }

    async def _is_present(self, artifact: Mapping[str, Any]) -> bool:
        """Is the published artifact in storage? Checked once per process, then remembered."""
        key, digest = artifact.get("path"), artifact.get("digest")
        if not key or not digest:
            return False
        if self._present.get(key) == digest:
            return True
        info = await self._storage.stat(key)
        if info is None or info.size != artifact.get("size", info.size):
            log.info("published artifact missing from storage; rebuilding", path=key)
            return False
        self._present[key] = digest
        return True

    async def _fail(
        self, obj: dict[str, Any], *, reason: str, message: str, transient: bool
    ) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        generation = meta.get("generation", 1)
        conditions = cond.failed(
            status.get("conditions") or [],
            reason=reason,
            message=message,
            transient=transient,
            generation=generation,
        )
        log.warning("reconcile failed", reason=reason, error=message, transient=transient)
        metrics.SOURCE_READY.labels(meta["namespace"], meta["name"]).set(0)
        try:
            await self._patch_status(
                obj, {"conditions": conditions, "observedGeneration": generation}
            )
            if reason != reasons.ARTIFACT_CONFLICT:
                await self._children.mark_failed(obj, reason=reason, message=message)
        except ApiError as exc:
            log.warning("status not updated", error=exc.message)
        await self._events.warning(obj, reason=reason, message=message)

    async def _patch_status(self, obj: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """One merge patch of /status, skipped when it would change nothing."""
        status = obj.get("status") or {}
        if all(_same_value(k, status.get(k), v) for k, v in changes.items()):
            return
        meta = obj["metadata"]
        updated = await self._kube.patch(
            EXTERNAL_SOURCES,
            meta["namespace"],
            meta["name"],
            {"status": dict(changes)},
            subresource="status",
        )
        obj["status"] = updated.get("status") or dict(status) | dict(changes)

    async def _add_finalizer(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "finalizers": [*(meta.get("finalizers") or ()), reasons.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        return await self._kube.patch(EXTERNAL_SOURCES, meta["namespace"], meta["name"], patch)

    async def _finalize(self, obj: dict[str, Any]) -> None:
        """Deletion: remove artifacts and the ExternalArtifact, then our finalizer."""
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        await delete_source(self._storage, namespace=namespace, name=name)
        prefix = source_prefix(namespace, name)
        for key in [k for k in self._present if k.startswith(prefix)]:
            del self._present[key]
        await self._children.delete(obj)
        patch = {
            "metadata": {
                "finalizers": [f for f in meta.get("finalizers") or () if f != reasons.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        await self._kube.patch(EXTERNAL_SOURCES, namespace, name, patch)
        self._events.forget(obj)
        log.info("artifacts removed; finalizer released")

    def _compiled_cel(self, spec: Mapping[str, Any]) -> CelTransform | None:
        expression = (spec.get("transform") or {}).get("cel")
        if not expression:
            return None
        if expression not in self._cel:
            if len(self._cel) > 1024:
                self._cel.clear()
            self._cel[expression] = compile_transform(
                expression,
                timeout=self._settings.cel_timeout,
                max_input_size=self._settings.cel_max_input_size,
            )
        return self._cel[expression]

    def _next_run(self, interval: float) -> float:
        spread = self._settings.interval_jitter_percentage / 100.0
        return interval * (1 + random.uniform(-spread, spread))  # noqa: S311 - scheduling jitter


def _insecure(spec: Mapping[str, Any]) -> bool:
    generator = spec.get("generator") or {}
    return bool((generator.get(generator.get("type")) or {}).get("insecureSkipVerify"))


def _artifact_metadata(produced: Produced) -> dict[str, str]:
    meta = {k: v for k, v in produced.metadata.items() if k in ("etag", "last-modified")}
    origin = produced.validators.etag or produced.validators.last_modified
    if origin:
        meta["org.opencontainers.image.revision"] = origin
    return meta


def _same_value(key: str, old: Any, new: Any) -> bool:
    if key == "conditions":
        return cond.same(old or [], new or [])
    if key == "artifact" and isinstance(old, dict) and isinstance(new, dict):
        ignore = {"lastUpdateTime"}
        return {k: v for k, v in old.items() if k not in ignore} == {
            k: v for k, v in new.items() if k not in ignore
        }
    return bool(old == new)
