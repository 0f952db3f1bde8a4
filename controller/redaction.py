"""Scrubbing Secret values out of every message a reconcile writes.

Secret values reach places we do not control the wording of: a hook's
stderr (a jq mistake prints the header it choked on), an origin's error page
that echoes a request header, an exception from a library. Checking each
message source by source cannot be complete, so the rule is the opposite:
while a reconcile runs, every Secret value it reads is *registered* in a
redaction scope bound to the reconcile's context (a `ContextVar`, so tasks
started inside see it and concurrent reconciles never see each other's
values), and every message written on its behalf — condition messages,
Events, log lines, local-mode output — goes through `scrub`, which replaces
each occurrence by ``[redacted]``. See docs/security.md ("Secret values in
messages").

What is registered for each value (str, or bytes decoded as UTF-8):

- the value itself, and its stripped form (header values are stripped when
  the request is built);
- each line of a multi-line value (a PEM key quoted line by line);
- the obvious encodings a program may print it in: standard and URL-safe
  base64 (with and without padding), percent-encoding, and JSON string
  escaping (what `jq` or a JSON error body shows);
- for values of at least `MIN_BASE64_CORE` bytes, the three base64 "cores" of
  the value: the characters that depend on the value alone whatever its offset
  in a longer encoded text, so `@base64` of a whole headers object is caught
  too (at most the two bytes at each edge of the value stay visible).

Values shorter than `MIN_LENGTH` (4) characters are not registered: scrubbing
every ``1``, ``on`` or ``GET`` would mangle messages beyond use while
protecting nothing a guess would not find; a credential that short offers no
protection of its own.

`scrub` uses one compiled alternation of the registered strings, longest
first (so a value is replaced whole, not around a shorter value it contains);
the pattern is rebuilt only when the set changes.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

#: what replaces every occurrence of a registered value
REDACTED = "[redacted]"
#: values shorter than this (in characters) are not registered; see the module docstring
MIN_LENGTH = 4
#: values from this many bytes on also register their base64 cores (see the docstring)
MIN_BASE64_CORE = 8


class _Scope:
    """The registered values of one reconcile and the pattern that finds them."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: set[str] = set(values)
        self._pattern: re.Pattern[str] | None = None

    def add(self, candidates: Iterable[str]) -> None:
        fresh = {c for c in candidates if len(c) >= MIN_LENGTH} - self.values
        if fresh:
            self.values |= fresh
            self._pattern = None

    def scrub(self, text: str) -> str:
        if not self.values:
            return text
        if self._pattern is None:
            ordered = sorted(self.values, key=lambda v: (-len(v), v))
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern.sub(REDACTED, text)


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "externalsource_redaction_scope", default=None
)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """A redaction scope for the code inside (one reconcile); nested scopes inherit values."""
    outer = _SCOPE.get()
    token = _SCOPE.set(_Scope(outer.values if outer is not None else ()))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def register(values: Iterable[str | bytes]) -> None:
    """Register Secret values (and their encodings) in the current scope; no scope: no-op."""
    current = _SCOPE.get()
    if current is None:
        return
    for value in values:
        current.add(_forms(value))


def register_secret(data: Mapping[str, bytes]) -> None:
    """Register every value of a decoded Secret's data."""
    register(data.values())


def scrub(text: str) -> str:
    """`text` with every registered value (or encoding of one) replaced by ``[redacted]``."""
    current = _SCOPE.get()
    return text if current is None else current.scrub(text)


def scrub_value(value: Any) -> Any:
    """`scrub` applied to every string inside `value` (dicts, lists, tuples; others unchanged)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


def structlog_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: scrub every string of the event dict (in the current scope)."""
    if _SCOPE.get() is None:
        return event_dict
    return {k: scrub_value(v) for k, v in event_dict.items()}


def _forms(value: str | bytes) -> set[str]:
    """The value, its stripped form and lines, and the encodings listed in the docstring."""
    if isinstance(value, bytes):
        raw = value
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    else:
        text, raw = value, value.encode("utf-8")
    texts: set[str] = set()
    if text is not None:
        texts = {text, text.strip()}
        texts.update(line.strip() for line in text.splitlines())
    forms = set(texts)
    for item in [raw, *(t.encode("utf-8") for t in texts)]:
        if len(item) < MIN_LENGTH:
            continue
        std = base64.b64encode(item).decode("ascii")
        url = base64.urlsafe_b64encode(item).decode("ascii")
        forms.update({std, std.rstrip("="), url, url.rstrip("=")})
        if len(item) >= MIN_BASE64_CORE:
            forms.update(_base64_cores(item))
    for t in texts:
        if len(t) < MIN_LENGTH:
            continue
        forms.add(urllib.parse.quote(t, safe=""))
        forms.add(urllib.parse.quote_plus(t))
        forms.add(json.dumps(t)[1:-1])
        forms.add(json.dumps(t, ensure_ascii=False)[1:-1])
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _base64_cores(raw: bytes) -> set[str]:
    """For each offset mod 3, the base64 characters determined by `raw` alone."""
    cores = set()
    n = len(raw)
    for shift in range(3):
        padded = bytes(shift) + raw
        # character j encodes bits 6j..6j+5: keep it if all its bits lie inside `raw`
        first = next(j for j in range(8) if (6 * j) // 8 >= shift)
        last = max(
            j for j in range(first, (n + shift) * 8 // 6 + 1) if (6 * j + 5) // 8 < shift + n
        )
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            cores.add(encode(padded).decode("ascii")[first : last + 1])
    return cores
