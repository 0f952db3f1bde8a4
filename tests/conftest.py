"""Test-wide rules: warnings are errors (pyproject), leaked asyncio tasks fail the test,
and every module in tests/fixtures/ is loaded as a pytest plugin (so each fixture
family lives in its own file and nobody edits a shared conftest to add one)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest_asyncio

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)


@pytest_asyncio.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running after its fixtures are torn down."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    for _ in range(10):  # let just-cancelled tasks run their finally blocks
        leaked = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
        if not leaked:
            return
        await asyncio.sleep(0)
    names = ", ".join(sorted(t.get_coro().__qualname__ for t in leaked))  # type: ignore[union-attr]
    raise AssertionError(f"test leaked {len(leaked)} asyncio task(s): {names}")
