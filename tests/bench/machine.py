"""What every benchmark records beside its numbers: the machine, the date, and its own
section of docs/benchmarks.md (replaced in place, other sections untouched)."""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import re

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def describe_machine() -> str:
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return (
        f"- Date: {datetime.date.today().isoformat()}\n"
        f"- Machine: {os.cpu_count()} CPUs (nproc), "
        f"{model.group(1).strip() if model else 'unknown CPU'}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def replace_section(title: str, body: str) -> None:
    """Write `## title` + body into docs/benchmarks.md, replacing an existing section."""
    section = f"## {title}\n\n{body.strip()}\n"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\nResults of `tests/bench/`.\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text.rstrip("\n") + "\n")
