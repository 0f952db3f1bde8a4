"""Benchmark: cel-python (`celpy`) vs common-expression-language (`cel`) for `spec.transform.cel`.

Measures what a reconcile pays: compile + evaluate + convert the result to plain
Python, on realistic transforms over a list of N items, plus whether the event
loop could keep running while an evaluation is under way (the GIL question
that decides how the time limit must be enforced). Run:

    .venv/bin/python -m tests.bench.bench_cel [--items 1000] [--repeat 5]

and copy the printed table into docs/benchmarks.md ("## CEL").
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import cel
import celpy
from celpy import celtypes

EXPRESSIONS = {
    "filter": "data.items.filter(i, i.enabled)",
    "map": 'data.items.map(i, {"name": i.name, "port": i.port})',
    "filter+map": (
        'data.items.filter(i, i.enabled && i.port > 100).map(i, i.name + ":" + string(i.port))'
    ),
    "exists/all/has": "data.items.exists(i, i.port == 999) && data.items.all(i, has(i.name))",
    "exists_one+size": 'data.items.exists_one(i, i.name == "svc-5") && size(data.items) > 0',
    "map literal": '{"count": size(data.items), "first": data.items[0].name}',
}


def make_data(items: int) -> dict[str, Any]:
    return {
        "items": [
            {"name": f"svc-{i}", "enabled": i % 2 == 0, "port": i, "labels": {"team": "a"}}
            for i in range(items)
        ]
    }


def celpy_plain(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): celpy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [celpy_plain(v) for v in value]
    return value


def run_celpy(expression: str, data: dict[str, Any]) -> Any:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return celpy_plain(program.evaluate({"data": celpy.json_to_cel(data)}))


def run_cel(expression: str, data: dict[str, Any]) -> Any:
    return cel.compile(expression).execute({"data": data})


def timed(
    fn: Callable[[str, dict[str, Any]], Any], expression: str, data: dict[str, Any], repeat: int
) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(expression, data)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def ticks_while(
    fn: Callable[[str, dict[str, Any]], Any], expression: str, data: dict[str, Any]
) -> tuple[int, float]:
    """How many 1 ms sleeps another thread completes during one evaluation (GIL release)."""
    ticks = 0
    done = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    start = time.perf_counter()
    fn(expression, data)
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    return ticks, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = make_data(args.items)
    print(f"items={args.items}, median of {args.repeat}, compile+evaluate+convert, milliseconds\n")
    print(
        "| expression | cel-python (celpy 0.5) | common-expression-language (cel 0.10) "
        "| same result |"
    )
    print("|---|---:|---:|---|")
    for label, expression in EXPRESSIONS.items():
        same = run_celpy(expression, data) == run_cel(expression, data)
        a = timed(run_celpy, expression, data, args.repeat) * 1000
        b = timed(run_cel, expression, data, args.repeat) * 1000
        print(f"| {label} `{expression}` | {a:.1f} | {b:.1f} | {same} |")
    print()
    for name, fn in (("celpy", run_celpy), ("cel", run_cel)):
        ticks, elapsed = ticks_while(fn, EXPRESSIONS["filter+map"], data)
        print(
            f"{name}: another thread ran {ticks} 1-ms ticks during a "
            f"{elapsed * 1000:.0f} ms evaluation"
        )


if __name__ == "__main__":
    main()
