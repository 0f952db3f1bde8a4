"""The middle of the pipeline, shared by the controller and `externalsource fetch`.

Steps 8-11 of docs/architecture.md: pre-request hooks change the request, the
generator fetches (conditionally), post-request hooks and the CEL transform
change the body, and packaging turns it into a reproducible tar.gz with its
digest. Nothing here talks to the Kubernetes API: the reconciler and local
mode wrap the same code with their own reads and writes, so a source that
works locally works in the cluster.

Also here: the one error protocol (`Failure`) that the errors of every room
satisfy structurally, so the reconciler has one `except` branch.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Protocol, runtime_checkable

import attrs

from controller.api import reasons
from controller.api.models import ExternalSourceSpec, Hook
from controller.fetchrequest import apply_description, request_description
from generators.base import NotModified, SourceGenerator, Validators
from generators.requests import HttpRequest, S3ObjectRequest
from hooks.cel import CelTransform, compile_transform_async
from hooks.runner import HookRunner
from hooks.spec import HookSpec, RetryBudget
from storage.packaging import PackagedArtifact, package_async


@runtime_checkable
class Failure(Protocol):
    """What every room's errors carry: what to tell the user and whether to retry.

    `generators.FetchError`, `storage.StorageError`, `hooks.HookError`, the
    controller's `ApiError`, `SecretNotFoundError` and `ArtifactConflictError`
    all satisfy it without importing it (the leaf rooms import nothing of ours).
    """

    message: str
    reason: str
    transient: bool
    retry_after: float | None


@attrs.frozen
class Produced:
    """A packaged artifact and what the origin said about it."""

    artifact: PackagedArtifact
    validators: Validators
    metadata: Mapping[str, str]

    def artifact_metadata(self) -> dict[str, str]:
        """`status.artifact.metadata`: the origin's validators, shown by Flux as the revision."""
        meta = {k: v for k, v in self.metadata.items() if k in ("etag", "last-modified")}
        origin = self.validators.etag or self.validators.last_modified
        if origin:
            meta["org.opencontainers.image.revision"] = origin
        return meta


class CelCache:
    """Compiled `spec.transform.cel` expressions, compiled off the event loop, bounded."""

    def __init__(
        self, *, timeout: float, max_input_size: int, max_memory: int, size: int = 1024
    ) -> None:
        self._timeout = timeout
        self._max_input_size = max_input_size
        self._max_memory = max_memory
        self._size = size
        self._compiled: dict[str, CelTransform] = {}

    async def get(self, expression: str) -> CelTransform:
        """The transform; raises `HookError` (InvalidCELExpression) for a bad expression."""
        if expression not in self._compiled:
            if len(self._compiled) >= self._size:
                self._compiled.clear()
            self._compiled[expression] = await compile_transform_async(
                expression,
                timeout=self._timeout,
                max_input_size=self._max_input_size,
                max_memory=self._max_memory,
            )
        return self._compiled[expression]


def hook_specs(hooks: Sequence[Hook]) -> list[HookSpec]:
    """The hooks room's view of the spec's hooks (defaults come from the model)."""
    return [
        HookSpec(
            name=h.name,
            command=h.command,
            args=tuple(h.args),
            env={e.name: e.value or "" for e in h.env},
            timeout=h.timeout_seconds,
            retry_policy=h.retry_policy,
        )
        for h in hooks
    ]


async def produce(
    *,
    generator: SourceGenerator,
    request: HttpRequest | S3ObjectRequest,
    previous: Validators | None,
    runner: HookRunner,
    spec: ExternalSourceSpec,
    cel: CelTransform | None,
    spool_dir: str | None,
    on_phase: Callable[[str], Awaitable[None] | None] | None = None,
) -> NotModified | Produced:
    """Fetch (conditionally when `previous` is given), transform and package.

    `on_phase(phase)` is told when a phase of a change starts (hooks, storing),
    so the caller can show progress; it is never called when the origin says
    "not modified".
    """
    pre = hook_specs(spec.hooks.pre_request if spec.hooks else ())
    post = hook_specs(spec.hooks.post_request if spec.hooks else ())
    budget = RetryBudget(spec.max_retries)
    if pre and isinstance(request, HttpRequest):
        described = await runner.run_pre(request_description(request), pre, budget)
        request = apply_description(request, described)
    fetched = await generator.fetch(request, previous)
    if isinstance(fetched, NotModified):
        return fetched
    with fetched:
        data: IO[bytes] = fetched.body
        if post or cel:
            await _tell(on_phase, reasons.EXECUTING_HOOKS)
            body = data.read()
            if post:
                body = await runner.run_post(body, post, budget)
            if cel is not None:
                body = await cel.apply(body)
            data = io.BytesIO(body)
        await _tell(on_phase, reasons.STORING)
        packaged = await package_async(data, spec.destination_path, spool_dir=spool_dir)
    return Produced(artifact=packaged, validators=fetched.validators, metadata=fetched.metadata)


async def _tell(on_phase: Callable[[str], Awaitable[None] | None] | None, phase: str) -> None:
    if on_phase is not None:
        result = on_phase(phase)
        if result is not None:
            await result
