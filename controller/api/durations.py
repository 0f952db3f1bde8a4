"""Go duration strings (`30s`, `5m`, `1h30m`, `500ms`), as Flux users write them.

One parser for flags and for spec fields, so `interval: 1m30s` means the same
everywhere it is accepted. It follows Go's `time.ParseDuration` (sign, decimal
fractions, units ns/us/µs/ms/s/m/h). The CRD's narrower pattern for spec
fields (no sign, units ms/s/m/h) is `SPEC_DURATION_PATTERN`, which validation
applies on top so the controller rejects what the API server would.
"""

from __future__ import annotations

import functools
import re
from typing import Final

SPEC_DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

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


@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; `0` alone needs no unit. Raises ValueError."""
    body = text[1:] if text[:1] in ("-", "+") else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(body) or not body:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return sign * total


def format_duration(seconds: float) -> str:
    """A Go-style duration, to the millisecond: 90 → `1m30s`, 0.5 → `500ms`, 5400 → `1h30m`.

    Zero units are left out (`1h`, where Go prints `1h0m0s`); both parse the same.
    """
    if seconds < 0:
        return "-" + format_duration(-seconds)
    seconds = round(seconds, 3)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole_minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(whole_minutes), 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{round(secs, 3):g}s" if secs else "",
    ]
    return "".join(parts)
