"""Go duration strings (`30s`, `5m`, `1h30m`, `500ms`), as Flux users write them.

One parser for flags and for spec fields, so `interval: 1m30s` means the same
everywhere it is accepted.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; `0` alone needs no unit. Raises ValueError."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """A Go-style duration: 90 → `1m30s`, 0.5 → `500ms`."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
