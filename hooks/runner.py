"""Controller side of hooks: chains pre-/post-request hooks and applies their retry policies.

Pre-request hooks receive the request description `{url, method, headers,
body}` as JSON on stdin and must print the (possibly changed) description;
post-request hooks receive the body and print the new body. Hooks of one list
run in order, each on the previous one's output.

Policies (per hook), applied to a failure *of the hook* (non-zero exit,
timeout, output cap, invalid output):

- `ignore`: log it and pass the hook's input on unchanged;
- `retry`: retry with jittered exponential backoff while the reconcile's
  shared `RetryBudget` lasts, then fail;
- `fail`: fail at once with `HookFailed`, naming the hook, exit code and the
  tail of stderr.

`HookFailed` is transient: a hook is a function of the fetched data, and the
origin's data can change without any spec change, so stalling until the spec
changes would freeze a source whose origin has been fixed. `HookNotAllowed`
is a configuration error (fixed only by the spec or the whitelist) and is
never retried nor ignored; neither is an unavailable sidecar ignored, because
publishing untransformed data while it restarts would flap the revision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import backoff
import structlog
from prometheus_client import Counter, Histogram

from hooks.executor import Executor, ExecutorUnavailable
from hooks.process import ExecutionResult
from hooks.spec import HOOK_FAILED, HOOK_NOT_ALLOWED, HookError, HookSpec, RetryBudget
from hooks.whitelist import WhitelistChecker

log = structlog.get_logger(__name__)

EXECUTIONS = Counter(
    "externalsource_hook_executions_total",
    "Hook executions by phase (pre, post), command and outcome "
    "(success, failure, timeout, invalid_output, not_allowed, unavailable).",
    ["phase", "command", "outcome"],
)
DURATION = Histogram(
    "externalsource_hook_duration_seconds",
    "Duration of hook executions by phase and command.",
    ["phase", "command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

#: characters of stderr quoted in a HookFailed message (status messages stay readable)
STDERR_IN_MESSAGE = 512
_NO_WHITELIST = "no hook whitelist is configured (--hooks-whitelist), so no hook may run"


class HookRunner:
    """Runs hook chains through an `Executor`, checking the whitelist first."""

    def __init__(
        self,
        executor: Executor,
        whitelist: WhitelistChecker | None,
        *,
        backoff_factor: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self._executor = executor
        self._whitelist = whitelist
        self._backoff_factor = backoff_factor
        self._backoff_max = backoff_max

    async def run_pre(
        self, request: Mapping[str, Any], hooks: Sequence[HookSpec], budget: RetryBudget
    ) -> dict[str, Any]:
        """Transform the request description `{url, method, headers, body}`."""
        data = json.dumps(dict(request), sort_keys=True).encode()
        for hook in hooks:
            data = await self._run_hook("pre", hook, data, budget, _validate_request)
        result: dict[str, Any] = json.loads(data)
        return result

    async def run_post(self, body: bytes, hooks: Sequence[HookSpec], budget: RetryBudget) -> bytes:
        """Transform the response body."""
        for hook in hooks:
            body = await self._run_hook("post", hook, body, budget, lambda out: out)
        return body

    def _check(self, hook: HookSpec) -> None:
        if self._whitelist is None:
            raise HookError(
                f"hook {hook.name!r}: {_NO_WHITELIST}", reason=HOOK_NOT_ALLOWED, hook=hook.name
            )
        try:
            self._whitelist.check(hook.command, hook.args, env=hook.env.keys())
        except HookError as exc:
            raise HookError(
                f"hook {hook.name!r}: {exc.message}", reason=exc.reason, hook=hook.name
            ) from None

    async def _run_hook(
        self,
        phase: str,
        hook: HookSpec,
        data: bytes,
        budget: RetryBudget,
        validate: Callable[[bytes], bytes],
    ) -> bytes:
        try:
            self._check(hook)
        except HookError:
            EXECUTIONS.labels(phase, hook.command, "not_allowed").inc()
            raise
        delays = backoff.expo(factor=self._backoff_factor, max_value=self._backoff_max)
        next(delays)  # backoff's generators yield once before the first value
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(phase, hook, data, validate)
            except ExecutorUnavailable:
                if hook.retry_policy != "retry" or not budget.take():
                    raise
            except HookError as exc:
                if exc.reason == HOOK_NOT_ALLOWED or hook.retry_policy == "fail":
                    raise
                if hook.retry_policy == "ignore":
                    log.warning(
                        "hooks.ignored_failure", phase=phase, hook=hook.name, error=exc.message
                    )
                    return data
                if not budget.take():
                    raise HookError(
                        f"{exc.message} (gave up after {attempt} attempts: retry budget exhausted)",
                        reason=exc.reason,
                        transient=exc.transient,
                        hook=hook.name,
                    ) from None
            delay = backoff.full_jitter(next(delays))
            log.info("hooks.retrying", phase=phase, hook=hook.name, attempt=attempt, delay=delay)
            await anyio.sleep(delay)

    async def _attempt(
        self, phase: str, hook: HookSpec, data: bytes, validate: Callable[[bytes], bytes]
    ) -> bytes:
        try:
            result = await self._executor.execute(
                command=hook.command,
                args=hook.args,
                env=hook.env,
                stdin=data,
                timeout=hook.timeout,
            )
        except ExecutorUnavailable:
            EXECUTIONS.labels(phase, hook.command, "unavailable").inc()
            raise
        except HookError as exc:
            outcome = "not_allowed" if exc.reason == HOOK_NOT_ALLOWED else "failure"
            EXECUTIONS.labels(phase, hook.command, outcome).inc()
            raise HookError(
                f"hook {hook.name!r} ({hook.command}) failed: {exc.message}",
                reason=exc.reason,
                transient=exc.transient,
                hook=hook.name,
            ) from None
        DURATION.labels(phase, hook.command).observe(result.duration)
        if result.timed_out or result.exit_code != 0:
            EXECUTIONS.labels(
                phase, hook.command, "timeout" if result.timed_out else "failure"
            ).inc()
            raise _failed(hook, result)
        try:
            output = validate(result.stdout)
        except ValueError as exc:
            EXECUTIONS.labels(phase, hook.command, "invalid_output").inc()
            raise HookError(
                f"hook {hook.name!r} ({hook.command}) printed an invalid request "
                f"description: {exc}",
                reason=HOOK_FAILED,
                transient=True,
                hook=hook.name,
            ) from None
        EXECUTIONS.labels(phase, hook.command, "success").inc()
        log.info(
            "hooks.executed",
            phase=phase,
            hook=hook.name,
            command=hook.command,
            duration=round(result.duration, 4),
        )
        return output


def _failed(hook: HookSpec, result: ExecutionResult) -> HookError:
    tail = result.stderr_tail.strip()[-STDERR_IN_MESSAGE:]
    what = (
        f"timed out after {hook.timeout:g}s"
        if result.timed_out
        else f"exited with code {result.exit_code}"
    )
    message = f"hook {hook.name!r} ({hook.command}) {what}"
    if tail:
        message += f"; stderr: {tail}"
    return HookError(message, reason=HOOK_FAILED, transient=True, hook=hook.name)


def _validate_request(output: bytes) -> bytes:
    """A pre-request hook must print a JSON object with the request description's shape."""
    try:
        value = json.loads(output)
    except ValueError:
        raise ValueError("output is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("output is not a JSON object")
    if not isinstance(value.get("url"), str) or not isinstance(value.get("method"), str):
        raise ValueError("'url' and 'method' must be strings")
    headers = value.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("'headers' must be an object of strings")
    if value.get("body") is not None and not isinstance(value["body"], str):
        raise ValueError("'body' must be a string or null")
    unknown = sorted(set(value) - {"url", "method", "headers", "body"})
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)}")
    return json.dumps(value, sort_keys=True).encode()
