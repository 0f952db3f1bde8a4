"""Injected API failures: which requests they hit, and the Status they answer with.

A controller must survive 401/403 (credential rotation, RBAC), 409 (a
concurrent writer), 429 (priority and fairness, with `Retry-After`) and 5xx;
tests script these with `Emulator.inject_error()`, which registers a kmock
reaction built from the two functions here. Reactions outrank the emulator's
own handlers, so a failed request leaves the stored state untouched, as a
refused write does on a real server.
"""

from __future__ import annotations

from collections.abc import Callable

from kmock._internal import rendering

from tests.harness.requestlog import verb_of

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def fault_matcher(
    *,
    verb: str | None,
    resource: str | None,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
) -> Callable[[rendering.Request], bool]:
    """Requests with this RBAC verb / resource (plural or plural.group) / namespace / name."""
    plural, _, group = (resource or "").partition(".")

    def matches(req: rendering.Request) -> bool:
        res = req.resource
        return (
            (verb is None or verb_of(req) == verb)
            and (not plural or (res is not None and res.plural == plural))
            and (not group or (res is not None and res.group == group))
            and (namespace is None or req.namespace == namespace)
            and (name is None or req.name == name)
            and (subresource is None or req.subresource == subresource)
        )

    return matches


def fault_response(
    status: int, *, reason: str | None, message: str | None, retry_after: int | None
) -> rendering.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": status,
        "reason": reason or REASONS.get(status, "InternalError"),
        "message": message or f"injected {status}",
        "details": {"retryAfterSeconds": retry_after} if retry_after is not None else {},
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return rendering.Response(status=status, headers=headers, payload=body)
