"""Secret values (and their obvious encodings) never survive in a message of their reconcile."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import urllib.parse
from collections.abc import Iterator

import pytest
import structlog

from controller import redaction
from controller.logging import setup_logging

KEY = "sk-live-4f9a7c0e2b"


def test_scrub_replaces_the_value_and_its_encodings() -> None:
    with redaction.scope():
        redaction.register([KEY.encode()])
        encodings = [
            KEY,
            base64.b64encode(KEY.encode()).decode(),
            base64.urlsafe_b64encode(KEY.encode()).decode().rstrip("="),
            urllib.parse.quote(KEY, safe=""),
        ]
        for encoded in encodings:
            text = f"jq: error: {encoded} (string) cannot be parsed as a number"
            assert redaction.scrub(text) == (
                "jq: error: [redacted] (string) cannot be parsed as a number"
            )


def test_json_escaped_and_multiline_values_are_scrubbed() -> None:
    tricky = 'pa"ss\\word/é'
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n"
    with redaction.scope():
        redaction.register([tricky, pem.encode()])
        assert redaction.scrub(json.dumps({"h": tricky})) == '{"h": "[redacted]"}'
        # one line of a PEM key quoted on its own (a parser error message)
        assert redaction.scrub("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == "line: [redacted]"


def test_longest_value_wins_and_short_values_are_not_registered() -> None:
    with redaction.scope():
        redaction.register(["abcd", "abcdefgh", "on", "GET"])
        assert redaction.scrub("x abcdefgh y abcd z") == "x [redacted] y [redacted] z"
        assert redaction.scrub("GET is on") == "GET is on"  # below MIN_LENGTH


def test_no_scope_no_registration_and_scopes_do_not_leak() -> None:
    redaction.register([KEY])  # outside any scope: nothing to register into
    assert redaction.scrub(KEY) == KEY
    with redaction.scope():
        redaction.register([KEY])
        with redaction.scope():  # nested: inherits
            assert redaction.scrub(KEY) == redaction.REDACTED
    with redaction.scope():
        assert redaction.scrub(KEY) == KEY


async def test_concurrent_reconciles_see_only_their_own_values() -> None:
    async def reconcile(mine: str, other: str) -> tuple[str, str]:
        with redaction.scope():
            redaction.register([mine])
            await asyncio.sleep(0.01)
            return redaction.scrub(mine), redaction.scrub(other)

    a, b = await asyncio.gather(
        reconcile("secret-A-1234", "secret-B-5678"), reconcile("secret-B-5678", "secret-A-1234")
    )
    assert a == ("[redacted]", "secret-B-5678")
    assert b == ("[redacted]", "secret-A-1234")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_scrubbed_ours_foreign_and_exceptions() -> None:
    out = io.StringIO()
    setup_logging(level="info", encoding="json", stream=out)
    with redaction.scope():
        redaction.register([KEY.encode()])
        structlog.get_logger("t").warning("hook failed", error=f"stderr: {KEY}", args=[KEY])
        logging.getLogger("aiohttp.client").warning("echoed %s", KEY)
        try:
            raise ValueError(f"bad header {KEY}")
        except ValueError:
            structlog.get_logger("t").exception("crashed")
    text = out.getvalue()
    assert KEY not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["error"] == "stderr: [redacted]"
    assert lines[0]["args"] == ["[redacted]"]
    assert lines[1]["event"] == "echoed [redacted]"
    assert "bad header [redacted]" in lines[2]["exception"]


@pytest.mark.parametrize("prefix", ["", "a", "ab", '{"X-Api-Key":"', "Bearer "])
def test_base64_of_a_longer_text_containing_the_value_is_scrubbed(prefix: str) -> None:
    """`@base64` of a whole headers object: the value's own characters are redacted."""
    encoded = base64.b64encode(f'{prefix}{KEY}"}}'.encode()).decode()
    with redaction.scope():
        redaction.register([KEY])
        scrubbed = redaction.scrub(f"jq: error: {encoded}")
    assert "[redacted]" in scrubbed
    # what is left can decode to at most two bytes of the value at each edge
    for size in range(5, len(KEY)):
        for start in range(len(KEY) - size + 1):
            piece = KEY[start : start + size].encode()
            for shift in range(3):
                core = base64.b64encode(bytes(shift) + piece).decode()[4:-4]
                if len(core) >= 8:
                    assert core not in scrubbed
