"""Typed hook descriptions and the hook error, shared by runner, sidecar client and controller.

The controller converts `spec.hooks.*[]` into `HookSpec`s; the runner never
sees a Kubernetes object. `HookError` carries a condition reason
(`HookFailed`, `HookNotAllowed`, `InvalidCELExpression`, `CELEvaluationFailed`)
and whether retrying could help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

RetryPolicy = Literal["ignore", "retry", "fail"]

#: condition reasons carried by `HookError.reason`
HOOK_FAILED = "HookFailed"
HOOK_NOT_ALLOWED = "HookNotAllowed"
INVALID_CEL_EXPRESSION = "InvalidCELExpression"
CEL_EVALUATION_FAILED = "CELEvaluationFailed"


@attrs.frozen
class HookSpec:
    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    timeout: float = 30.0
    retry_policy: RetryPolicy = "fail"


@attrs.define
class RetryBudget:
    """The aggregate retry budget of one reconcile (`spec.maxRetries`), shared by all hooks."""

    remaining: int

    def take(self) -> bool:
        """Consume one retry; False when the budget is exhausted."""
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class HookError(Exception):
    """A hook, the sidecar or the CEL transform failed.

    `transient=True`: retry the reconcile with backoff (the data or the sidecar
    may change); `False`: stall until the spec or the whitelist changes.
    """

    #: hooks and storage never ask for a particular delay (the error protocol has the field)
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str = HOOK_FAILED,
        transient: bool = False,
        hook: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.transient = transient
        self.hook = hook
