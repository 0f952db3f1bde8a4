"""The runtime dependency closure of the package, and the `constraints.txt` pins.

The Dockerfile installs from `constraints.txt`, so the image is built from the
exact versions the test suite ran against. This module computes the set of
distributions the installed package needs at run time (its `dependencies`,
transitively, no extras), which `test_constraints.py` checks against the file
and which regenerates it:

    .venv/bin/python -m tests.deploy.constraints > constraints.txt
"""

from __future__ import annotations

import importlib.metadata
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "externalsource-controller"


def runtime_closure(project: str = PROJECT) -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of `project`."""
    found: dict[str, str] = {}
    pending = [project]
    while pending:
        dist = importlib.metadata.distribution(pending.pop())
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name not in found:
                found[name] = importlib.metadata.version(req.name)
                pending.append(req.name)
    return found


def parse_constraints(text: str) -> dict[str, str]:
    """`name==version` lines of a constraints file (comments ignored)."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match is None:
            raise ValueError(f"not an exact pin: {line!r}")
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def render_constraints(pins: dict[str, str]) -> str:
    header = (
        "# Runtime dependency pins for the container image (Dockerfile).\n"
        "# Regenerate: .venv/bin/python -m tests.deploy.constraints > constraints.txt\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


if __name__ == "__main__":
    print(render_constraints(runtime_closure()), end="")
