"""Log lines are JSON off a terminal and carry the reconcile context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from controller.logging import reconcile_context, setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Every test here reconfigures logging: put the process's configuration back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_carry_namespace_name_and_reconcile_id() -> None:
    out = io.StringIO()
    setup_logging(level="info", encoding=None, stream=out)
    log = structlog.get_logger("controller.test")
    with reconcile_context("ns1", "src") as reconcile_id:
        log.info("fetched", status=304)
        logging.getLogger("generators.http").warning("stdlib line")
    log.debug("hidden at info")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["event"] == "fetched"
    assert lines[0]["namespace"] == "ns1"
    assert lines[0]["name"] == "src"
    assert lines[0]["reconcile_id"] == reconcile_id
    assert lines[0]["level"] == "info"
    assert lines[1]["reconcile_id"] == reconcile_id
    assert lines[1]["event"] == "stdlib line"


def test_console_encoding_is_not_json() -> None:
    out = io.StringIO()
    setup_logging(level="debug", encoding="console", stream=out)
    structlog.get_logger("x").debug("hello", key="value")
    text = out.getvalue()
    assert "hello" in text
    assert "key" in text
    assert not text.startswith("{")
