"""The CEL transform (`spec.transform.cel`): `data` in, deterministic JSON out.

Library: cel-python (`celpy`), chosen by measurement (tests/bench/bench_cel.py,
docs/benchmarks.md "CEL"): its list macros (`filter`, `map`) scale linearly
with the input, while common-expression-language's grow quadratically
(1,000 → 3,000 items: ~3.5x vs ~10x the time), and transforms are mostly
`filter`/`map`.

Time limit: neither library can be interrupted (celpy is pure Python, the
other holds the GIL for the whole evaluation), and CEL's cost grows with the
input (`data.items.map(x, data.items.map(y, …))` over 1,000 items runs for a
minute). A thread with a timeout would leave the runaway evaluation burning
CPU; so `apply()` evaluates in a short-lived worker process (this module's
`main()`, `python -m hooks.cel`) through `hooks.process.run_process`, which
kills it at the deadline.

Memory limit: the cost of CEL also shows in memory (`data.items.map(x,
data.items)` over a 1.5 MB body grew to 3.5 GB in 10 s), and the worker lives
in the controller's container. The worker caps its own address space with
`RLIMIT_AS` (`max_memory`, `--cel-max-memory`) before it reads the body, so a
runaway evaluation ends in a `MemoryError` inside the worker — reported as a
`CELEvaluationFailed` naming the limit — instead of growing the container
into the OOM killer. The result is capped too (`max_output_size`).

Compilation (syntax check) happens before the fetch so that an invalid
expression is reported early as a configuration error; the controller uses
`compile_transform_async`, which parses in a worker thread so that a long
expression (parsing 16 KiB, the CRD's bound, takes up to half a second) never
blocks the event loop. See docs/hooks.md ("The CEL transform").

Output: the result serialized as compact JSON with sorted keys, so equal
results give equal bytes and the artifact digest stays stable.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import sys
from typing import Any

import anyio.to_thread
import attrs
import celpy
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from hooks.process import OutputLimitExceeded, run_process
from hooks.spec import CEL_EVALUATION_FAILED, INVALID_CEL_EXPRESSION, HookError

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_INPUT_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_OUTPUT_SIZE = 64 * 1024 * 1024
#: the worker's address-space cap; with the controller's own ~150 MiB it stays under the
#: container's default 512 MiB limit (a body of about 5 MB of small JSON objects fits)
DEFAULT_MAX_MEMORY = 256 * 1024 * 1024
_EVALUATION_ERROR_EXIT = 3
_MEMORY_EXIT = 4
_MEMORY_FLAG = "--max-memory="
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _evaluation_failed(message: str) -> HookError:
    # Data-driven: the origin's data may change, so the reconcile retries with backoff.
    return HookError(message, reason=CEL_EVALUATION_FAILED, transient=True)


def compile_transform(
    expression: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
    max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> CelTransform:
    """Check the syntax now; raises `HookError` reason `InvalidCELExpression` (not transient)."""
    _parse(expression)
    return CelTransform(
        expression=expression,
        timeout=timeout,
        max_input_size=max_input_size,
        max_output_size=max_output_size,
        max_memory=max_memory,
    )


async def compile_transform_async(
    expression: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
    max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> CelTransform:
    """`compile_transform` in a worker thread, off the event loop (for the controller)."""

    def compile_now() -> CelTransform:
        return compile_transform(
            expression,
            timeout=timeout,
            max_input_size=max_input_size,
            max_output_size=max_output_size,
            max_memory=max_memory,
        )

    return await anyio.to_thread.run_sync(compile_now)


@attrs.frozen
class CelTransform:
    """A syntax-checked expression with its limits; `apply()` is safe to call concurrently."""

    expression: str
    timeout: float = DEFAULT_TIMEOUT
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE
    max_memory: int = DEFAULT_MAX_MEMORY

    async def apply(self, body: bytes) -> bytes:
        """Evaluate on `body` (JSON, else YAML) in a worker bounded in time and memory."""
        if len(body) > self.max_input_size:
            raise _evaluation_failed(
                f"the body ({len(body)} bytes) exceeds the CEL input limit of "
                f"{self.max_input_size} bytes"
            )
        try:
            result = await run_process(
                path=sys.executable,
                args=["-m", "hooks.cel", f"{_MEMORY_FLAG}{self.max_memory}", self.expression],
                env={"PYTHONPATH": _PACKAGE_ROOT},
                stdin=body,
                timeout=self.timeout,
                max_stdout=self.max_output_size,
                max_stderr=16 * 1024,
            )
        except OutputLimitExceeded as exc:
            raise _evaluation_failed(f"CEL result exceeded {exc.limit} bytes") from None
        except OSError as exc:
            raise _evaluation_failed(f"cannot start the CEL worker: {exc.strerror}") from None
        if result.timed_out:
            raise _evaluation_failed(f"CEL evaluation exceeded the time limit of {self.timeout:g}s")
        if result.exit_code == _EVALUATION_ERROR_EXIT:
            raise _evaluation_failed(result.stderr_tail.strip())
        if result.exit_code == _MEMORY_EXIT or "MemoryError" in result.stderr_tail:
            raise _evaluation_failed(
                f"CEL evaluation exceeded the memory limit of {self.max_memory // (1024 * 1024)} "
                "MiB (--cel-max-memory); the expression builds too much data for this body"
            )
        if result.exit_code != 0:
            raise _evaluation_failed(
                f"CEL worker failed with exit code {result.exit_code}: "
                f"{result.stderr_tail.strip()[-512:]}"
            )
        return result.stdout


def evaluate(expression: str, body: bytes) -> bytes:
    """Evaluate in this process, without a time limit (the worker's job; also for tools)."""
    program = celpy.Environment().program(_parse(expression))
    activation = {"data": json_to_cel(_load(body))}
    try:
        value = program.evaluate(activation)
    except CELEvalError as exc:
        raise _evaluation_failed(f"CEL evaluation failed: {_describe(exc)}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise _evaluation_failed(f"CEL evaluation failed: {exc}") from None
    try:
        text = json.dumps(
            _to_json(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise _evaluation_failed(f"CEL result cannot be serialized as JSON: {exc}") from None
    return text.encode("utf-8")


def _parse(expression: str) -> Any:
    try:
        return celpy.Environment().compile(expression)
    except CELParseError as exc:
        cause = exc.__context__
        token = getattr(cause, "token", None)
        char = getattr(cause, "char", None)
        if token is not None:
            what = (
                "unexpected end of expression"
                if token.type == "$END"
                else f"unexpected {token.value!r}"
            )
        elif char is not None:
            what = f"unexpected character {char!r}"
        else:
            what = "syntax error"
        raise HookError(
            f"invalid CEL expression at line {exc.line}, column {exc.column}: {what}\n"
            f"{exc.args[0] if exc.args else ''}".rstrip(),
            reason=INVALID_CEL_EXPRESSION,
            transient=False,
        ) from None


class _JsonCompatibleLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: dates stay strings, as they would in JSON."""


_JsonCompatibleLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return yaml.load(body, Loader=_JsonCompatibleLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _evaluation_failed(f"the body is neither JSON nor YAML: {exc}") from None


def _describe(error: CELEvalError) -> str:
    return str(error.args[0]) if error.args else type(error).__name__


def _to_json(value: Any) -> Any:
    """celpy values → plain JSON values (protobuf JSON mapping for bytes, timestamps, durations)."""
    if isinstance(value, CELEvalError):
        raise ValueError(_describe(value))
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, bool | celtypes.BoolType):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, celtypes.TimestampType | celtypes.DurationType):
        return str(value)
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {_key(k): _to_json(v) for k, v in value.items()}
    raise TypeError(f"values of type {type(value).__name__} have no JSON form")


def _key(key: Any) -> str:
    if isinstance(key, bool | celtypes.BoolType):
        return "true" if key else "false"
    return str(key)


def main() -> None:
    """Worker: `python -m hooks.cel [--max-memory=BYTES] EXPRESSION` < body > JSON result."""
    argv = sys.argv[1:]
    if argv and argv[0].startswith(_MEMORY_FLAG):
        limit = int(argv.pop(0).removeprefix(_MEMORY_FLAG))
        # before the body is read: from here on a runaway allocation is a MemoryError
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if len(argv) != 1:
        sys.exit("usage: python -m hooks.cel [--max-memory=BYTES] EXPRESSION < body")
    try:
        output = evaluate(argv[0], sys.stdin.buffer.read())
    except HookError as exc:
        sys.stderr.write(exc.message)
        sys.exit(_EVALUATION_ERROR_EXIT)
    except MemoryError:
        os._exit(_MEMORY_EXIT)  # no clean-up: it could need memory there is none of
    except RecursionError:
        sys.stderr.write("CEL evaluation failed: the expression or the data is nested too deeply")
        sys.exit(_EVALUATION_ERROR_EXIT)
    sys.stdout.buffer.write(output)


if __name__ == "__main__":
    main()
