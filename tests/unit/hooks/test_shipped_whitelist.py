"""The shipped jq whitelist lets a hook read its stdin and nothing else (real sidecar, real jq).

Every bypass of issue 13 is tried as an attacker would: positional files,
file-reading options (also combined with allowed flags), module imports with a
search path, module metadata, path-revealing builtins. Each must be refused by
the sidecar (403 `HookNotAllowed`) and the planted file's content must never
come back; legitimate filters still work.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from collections.abc import Callable

import pytest
import yaml

from hooks.spec import HookError
from hooks.whitelist import Whitelist
from tests.fixtures.sidecar import SidecarProcess
from tests.unit.hooks.test_sidecar import b64, execute

ROOT = pathlib.Path(__file__).parents[3]
SECRET = "planted-file-content-7c1e"


def shipped_whitelist() -> str:
    """The whitelist the kustomize base ships (the chart's default is asserted equal)."""
    configmap = yaml.safe_load((ROOT / "manifests/base/hooks-whitelist.yaml").read_text())
    text: str = configmap["data"]["whitelist.yaml"]
    return text


def test_the_chart_ships_the_same_whitelist() -> None:
    values = yaml.safe_load((ROOT / "charts/externalsource-controller/values.yaml").read_text())
    assert values["hooks"]["whitelist"] == yaml.safe_load(shipped_whitelist())


@pytest.fixture
def planted(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory of files a hook must never read: data, a module, a program."""
    directory = tmp_path / "planted"
    directory.mkdir()
    (directory / "x.json").write_text(json.dumps({"secret": SECRET}))
    (directory / "m.jq").write_text(f'def leak: "{SECRET}";')
    (directory / "prog.jq").write_text(f'"{SECRET}"')
    (directory / "raw.txt").write_text(SECRET)
    return directory


@pytest.fixture
def shipped_sidecar(make_hooks_sidecar: Callable[..., SidecarProcess]) -> SidecarProcess:
    return make_hooks_sidecar(whitelist=shipped_whitelist())


def bypasses(d: pathlib.Path) -> list[list[str]]:
    return [
        # positional files after the filter
        ["-c", ".", f"{d}/raw.txt"],
        [".", f"{d}/x.json"],
        ["-R", ".", f"{d}/raw.txt"],
        ["-s", ".", f"{d}/x.json", f"{d}/x.json"],
        # options that read files or set the module search path
        ["-f", f"{d}/prog.jq"],
        ["-cf", f"{d}/prog.jq"],
        ["--from-file", f"{d}/prog.jq"],
        ["--rawfile", "v", f"{d}/raw.txt", "$v"],
        ["--slurpfile", "v", f"{d}/x.json", "$v"],
        ["-L", str(d), 'import "m" as m; m::leak'],
        [f"-L{d}", 'include "m"; leak'],
        ["--args", ".", f"{d}/raw.txt"],
        ["--jsonargs", ".", "1"],
        ["-c", "--", f"{d}/raw.txt"],
        ["-c", "-"],
        # file-reading language features
        [f'import "x" as $v {{search: "{d}"}}; $v'],
        ["-c", f'import "x" as $v {{search: "{d}"}}; $v'],
        [f'include "m" {{search: "{d}"}}; leak'],
        [f'import "m" as m {{search: "{d}"}}; m::leak'],
        ['"m" | modulemeta'],
        ["$__loc__"],
        ["input_filename"],
        ["get_search_list"],
        ["-n", "[inputs, input_filename]"],
    ]


async def test_every_bypass_is_refused_by_the_sidecar(
    shipped_sidecar: SidecarProcess, planted: pathlib.Path
) -> None:
    for args in bypasses(planted):
        status, body = await execute(
            shipped_sidecar, {"command": "jq", "args": args, "stdin": b64(b'{"a": 1}')}
        )
        assert status == 403, (args, status, body)
        assert body["reason"] == "HookNotAllowed", args
        assert SECRET not in json.dumps(body), args


def test_the_controller_refuses_the_same_bypasses_early(planted: pathlib.Path) -> None:
    whitelist = Whitelist.parse(shipped_whitelist())
    for args in bypasses(planted):
        with pytest.raises(HookError) as caught:
            whitelist.check("jq", args)
        assert caught.value.reason == "HookNotAllowed", args


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["-c", ".items | map(.name)"], b'{"items": [{"name": "a"}]}', b'["a"]'),
        (["-S", "-c", "{b: 1, a: .x}"], b'{"x": 2}', b'{"a":2,"b":1}'),
        (["-rj", ".a"], b'{"a": "text"}', b"text"),
        (["-n", "[inputs | .a] | add"], b'{"a": 1} {"a": 2}', b"3"),
        (
            ["-c", '.headers["X-Mode"] = "strict"'],
            b'{"headers": {}}',
            b'{"headers":{"X-Mode":"strict"}}',
        ),
        (["-c", '{"incl\\u0075de": .a}'], b'{"a": 1}', b'{"include":1}'),
        (["-c", "$ENV | keys"], b"null", b'["PATH"]'),
    ],
)
async def test_filters_reading_stdin_still_work(
    shipped_sidecar: SidecarProcess, args: list[str], stdin: bytes, expected: bytes
) -> None:
    status, body = await execute(
        shipped_sidecar, {"command": "jq", "args": args, "stdin": b64(stdin)}
    )
    assert status == 200, body
    assert body["exitCode"] == 0, body
    assert base64.b64decode(body["stdout"]).strip() == expected


def test_the_bypasses_are_real_without_the_whitelist(planted: pathlib.Path) -> None:
    """Run straight through jq, the main bypasses do read the planted files (so the test bites)."""
    leaked = 0
    for args in bypasses(planted):
        done = subprocess.run(
            ["/usr/bin/jq", *args], input=b'{"a": 1}', capture_output=True, timeout=10, check=False
        )
        leaked += SECRET.encode() in done.stdout
    assert leaked >= 10
