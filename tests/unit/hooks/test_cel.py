"""spec.transform.cel: compile errors, evaluation errors, YAML input, stable output, limits."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from hooks.cel import compile_transform, compile_transform_async
from hooks.spec import HookError

ITEMS = json.dumps(
    {"items": [{"name": f"svc-{i}", "enabled": i % 2 == 0, "port": 8000 + i} for i in range(6)]}
).encode()


async def test_filter_and_map_transform_the_body() -> None:
    transform = compile_transform(
        'data.items.filter(i, i.enabled).map(i, {"n": i.name, "p": i.port})'
    )
    result = json.loads(await transform.apply(ITEMS))
    assert result == [
        {"n": "svc-0", "p": 8000},
        {"n": "svc-2", "p": 8002},
        {"n": "svc-4", "p": 8004},
    ]


async def test_output_is_compact_json_with_sorted_keys() -> None:
    transform = compile_transform('{"z": data.b, "a": [true, null, 1.5, b"hi"], "m": data.m}')
    first = await transform.apply(b'{"b": 2, "m": {"y": 1, "x": 2}}')
    again = await transform.apply(b'{"m": {"x": 2, "y": 1}, "b": 2}')
    assert first == again
    assert first == b'{"a":[true,null,1.5,"aGk="],"m":{"x":2,"y":1},"z":2}'


async def test_yaml_bodies_are_accepted_and_dates_stay_strings() -> None:
    transform = compile_transform("data.releases.map(r, r.version + '@' + r.date)")
    body = b"releases:\n  - version: '1.2'\n    date: 2024-05-01\n"
    assert await transform.apply(body) == b'["1.2@2024-05-01"]'


def test_invalid_expression_is_a_configuration_error() -> None:
    with pytest.raises(HookError) as caught:
        compile_transform("data.items.filter(i, i.enabled")
    error = caught.value
    assert error.reason == "InvalidCELExpression"
    assert error.transient is False
    assert error.message.startswith("invalid CEL expression at line 1, column ")
    assert "unexpected end of expression" in error.message
    assert "^" in error.message  # points at the problem

    with pytest.raises(HookError) as caught:
        compile_transform("data.$x")
    assert "unexpected character '$'" in caught.value.message


@pytest.mark.parametrize(
    ("expression", "body", "expected"),
    [
        ("data.missing", b"{}", "no such member in mapping: 'missing'"),
        ("data.a / 0", b'{"a": 1}', "divide by zero"),
        ("data.a", b"{not json: [", "the body is neither JSON nor YAML"),
        ("data.a", b'{"a": NaN}', "cannot be serialized as JSON"),
    ],
)
async def test_evaluation_errors_are_reported(expression: str, body: bytes, expected: str) -> None:
    with pytest.raises(HookError) as caught:
        await compile_transform(expression).apply(body)
    assert caught.value.reason == "CELEvaluationFailed"
    assert caught.value.transient is True
    assert expected in caught.value.message


async def test_a_runaway_expression_is_stopped_at_the_time_limit() -> None:
    transform = compile_transform(
        "data.items.map(x, data.items.map(y, data.items.map(z, x + y + z))).size()", timeout=1.0
    )
    body = json.dumps({"items": list(range(500))}).encode()
    with pytest.raises(HookError) as caught:
        await transform.apply(body)
    assert caught.value.reason == "CELEvaluationFailed"
    assert caught.value.message == "CEL evaluation exceeded the time limit of 1s"


async def test_bodies_over_the_input_limit_are_refused() -> None:
    transform = compile_transform("data", max_input_size=10)
    with pytest.raises(HookError) as caught:
        await transform.apply(b'{"a": "0123456789"}')
    assert "exceeds the CEL input limit of 10 bytes" in caught.value.message


_MEASURE_WORKER = """
import asyncio, json, resource, sys
from hooks.cel import compile_transform
from hooks.spec import HookError
body = json.dumps({"items": [{"name": f"item-{i}", "v": i} for i in range(40000)]}).encode()
transform = compile_transform(sys.argv[1], max_memory=int(sys.argv[2]), timeout=120)
try:
    asyncio.run(transform.apply(body))
    outcome = {"error": None}
except HookError as exc:
    outcome = {"error": exc.message, "reason": exc.reason}
# this process's only child was the CEL worker: its peak RSS, in KiB on Linux
outcome["peak_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
outcome["body"] = len(body)
print(json.dumps(outcome))
"""


def test_a_memory_bomb_fails_clearly_and_the_worker_stays_under_the_cap() -> None:
    """`data.items.map(x, data.items)` on a 1.4 MB body would grow to gigabytes without a cap."""
    cap = 256 * 1024 * 1024
    # a fresh interpreter whose only child is the worker, so RUSAGE_CHILDREN measures it alone
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE_WORKER, "data.items.map(x, data.items)", str(cap)],
        capture_output=True,
        check=True,
        timeout=300,
        cwd=pathlib.Path(__file__).parents[3],
    )
    outcome = json.loads(done.stdout)
    assert outcome["body"] > 1_300_000
    assert outcome["reason"] == "CELEvaluationFailed"
    assert outcome["error"] == (
        "CEL evaluation exceeded the memory limit of 256 MiB (--cel-max-memory); "
        "the expression builds too much data for this body"
    )
    assert 0 < outcome["peak_rss"] < cap


async def test_compiling_off_the_event_loop_reports_syntax_errors_the_same() -> None:
    transform = await compile_transform_async("data.items.size()", max_memory=64 * 1024 * 1024)
    assert transform.max_memory == 64 * 1024 * 1024
    assert await transform.apply(ITEMS) == b"6"
    with pytest.raises(HookError) as caught:
        await compile_transform_async("data.items.filter(i, ")
    assert caught.value.reason == "InvalidCELExpression"
