"""Whitelist format, checker messages and the reloading manager (files on disk, no sockets)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from hooks.spec import HookError
from hooks.whitelist import Whitelist, WhitelistError
from hooks.whitelist_manager import WhitelistManager

JQ = """\
commands:
  jq:
    path: /usr/bin/jq
    maxArgs: 2
    args: ['-[cSr]+', '\\.[A-Za-z0-9_.]*']
    env: [MODE]
"""


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_check_returns_the_whitelisted_absolute_path() -> None:
    assert Whitelist.parse(JQ).check("jq", ["-c", ".items"], env=["MODE"]) == "/usr/bin/jq"


@pytest.mark.parametrize(
    ("command", "args", "env", "expected"),
    [
        ("sh", [], [], "command 'sh' is not in the hook whitelist (allowed: jq)"),
        ("/usr/bin/jq", [], [], "command '/usr/bin/jq' is not in the hook whitelist"),
        ("../../bin/sh", [], [], "command '../../bin/sh' is not in the hook whitelist"),
        ("jq", ["-c", "-r", ".a"], [], "got 3 arguments, the whitelist allows at most 2"),
        ("jq", ["-c", "env"], [], "argument 2 of 'jq' ('env') does not match any allowed pattern"),
        ("jq", ["-f"], [], "argument 1 of 'jq' ('-f') does not match"),
        ("jq", [".a\0"], [], "contains a NUL byte"),
        ("jq", [".a"], ["LD_PRELOAD"], "environment variable 'LD_PRELOAD' is not allowed"),
    ],
)
def test_refusals_say_what_is_wrong(
    command: str, args: list[str], env: list[str], expected: str
) -> None:
    with pytest.raises(HookError) as caught:
        Whitelist.parse(JQ).check(command, args, env=env)
    assert caught.value.reason == "HookNotAllowed"
    assert caught.value.transient is False
    assert expected in caught.value.message


def test_arguments_must_match_fully_not_partially() -> None:
    whitelist = Whitelist.parse(JQ)
    with pytest.raises(HookError):
        whitelist.check("jq", [".a; rm -rf /"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "commands:\n  jq: {path: usr/bin/jq}\n",
            "whitelist command 'jq': 'path' must be an absolute",
        ),
        ("commands:\n  jq: {path: /usr/../bin/jq}\n", "absolute, normalized path"),
        ("commands:\n  jq: {args: ['.']}\n", "'path' is required"),
        (
            "commands:\n  jq: {path: /usr/bin/jq, args: ['[']}\n",
            "args[1] '[' is not a valid RE2 regular",
        ),
        (
            "commands:\n  jq: {path: /usr/bin/jq, arg: []}\n",
            "whitelist command 'jq': unknown keys arg",
        ),
        ("commands:\n  jq: {path: /usr/bin/jq, maxArgs: -1}\n", "'maxArgs' must be a non-negative"),
        ("commands:\n  jq: {path: /usr/bin/jq, env: [LD_PRELOAD]}\n", "'LD_PRELOAD' is reserved"),
        ("commands:\n  ../sh: {path: /bin/sh}\n", "whitelist command '../sh': a command name"),
        ("command: {}\n", "unknown top-level keys: command"),
        ("commands:\n  true: {path: /bin/true}\n", "name True is not a string (quote it"),
        ("", "must be a mapping"),
        ("commands: [\n", "not valid YAML"),
        pytest.param(
            "commands: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply", id="deep"
        ),
    ],
)
def test_invalid_whitelists_are_rejected_naming_the_entry(text: str, expected: str) -> None:
    with pytest.raises(WhitelistError) as caught:
        Whitelist.parse(text)
    assert expected in str(caught.value)


def test_manager_reloads_a_configmap_style_symlink_swap(tmp_path: pathlib.Path) -> None:
    # A ConfigMap volume: whitelist.yaml -> ..data/whitelist.yaml, ..data -> ..<timestamp>
    first, second = tmp_path / "..2024_1", tmp_path / "..2024_2"
    first.mkdir()
    second.mkdir()
    (first / "whitelist.yaml").write_text(JQ)
    (second / "whitelist.yaml").write_text(JQ + "  sleep: {path: /bin/sleep, args: ['[0-9]+']}\n")
    os.symlink(first.name, tmp_path / "..data")
    os.symlink("..data/whitelist.yaml", tmp_path / "whitelist.yaml")
    manager = WhitelistManager(str(tmp_path / "whitelist.yaml"))
    assert manager.generation == 1
    with pytest.raises(HookError):
        manager.check("sleep", ["1"])

    assert manager.reload() is False  # same content: nothing changes
    os.symlink(second.name, tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert manager.reload() is True

    assert manager.check("sleep", ["1"]) == "/bin/sleep"
    assert manager.generation == 2


def test_a_broken_file_keeps_the_previous_whitelist_and_is_reported(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "whitelist.yaml"
    path.write_text(JQ)
    manager = WhitelistManager(str(path))
    errors_before = metric("externalsource_hooks_whitelist_reload_errors_total")

    path.write_text("commands:\n  jq: {path: relative/jq}\n")
    assert manager.reload() is False
    assert manager.reload() is False  # the same broken content is reported once

    assert manager.check("jq", [".a"]) == "/usr/bin/jq"
    assert manager.generation == 1
    assert manager.error is not None
    assert "'path' must be an absolute" in manager.error
    assert metric("externalsource_hooks_whitelist_reload_errors_total") == errors_before + 1
    assert metric("externalsource_hooks_whitelist_loaded") == 0

    path.write_text(JQ + "  sleep: {path: /bin/sleep}\n")
    assert manager.reload() is True
    assert manager.error is None
    assert metric("externalsource_hooks_whitelist_loaded") == 1


def test_a_whitelist_that_never_loaded_refuses_everything_clearly(tmp_path: pathlib.Path) -> None:
    manager = WhitelistManager(str(tmp_path / "missing.yaml"))
    with pytest.raises(HookError) as caught:
        manager.check("jq", [".a"])
    assert caught.value.reason == "HookNotAllowed"
    assert "could not be loaded" in caught.value.message
    assert "missing.yaml" in caught.value.message


async def test_run_polls_until_cancelled(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "whitelist.yaml"
    path.write_text("commands: {}\n")
    manager = WhitelistManager(str(path), reload_interval=0.01)
    watcher = asyncio.create_task(manager.run())
    try:
        path.write_text(JQ)
        for _ in range(500):
            if manager.generation == 2:
                break
            await asyncio.sleep(0.01)
        assert manager.check("jq", [".a"]) == "/usr/bin/jq"
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "GLIBC_TUNABLES",
        "GCONV_PATH",
        "BASH_ENV",
        "ENV",
        "HOME",
        "PATH",
        "LOCPATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "PERL5LIB",
        "NODE_OPTIONS",
        "BASH_FUNC_x%%",
        "MALLOC_CHECK_",
        "GIT_SSH_COMMAND",
        "JAVA_TOOL_OPTIONS",
    ],
)
def test_loader_and_interpreter_environment_names_cannot_be_whitelisted(name: str) -> None:
    text = f"commands:\n  jq: {{path: /usr/bin/jq, env: ['{name}']}}\n"
    with pytest.raises(WhitelistError) as caught:
        Whitelist.parse(text)
    message = str(caught.value)
    assert "is reserved" in message or "not a valid variable name" in message


def test_ordinary_environment_names_stay_allowed() -> None:
    text = "commands:\n  jq: {path: /usr/bin/jq, env: [MODE, API_REGION, LANG]}\n"
    rule = Whitelist.parse(text).commands["jq"]
    assert rule.env_names == {"MODE", "API_REGION", "LANG"}


_CATASTROPHIC = """
import sys
from hooks.spec import HookError
from hooks.whitelist import Whitelist
whitelist = Whitelist.parse("commands:\\n  x: {path: /bin/true, args: ['(a+)+b']}\\n")
try:
    whitelist.check("x", ["a" * 8000 + "c"])
except HookError as exc:
    print(exc.reason)
"""


def test_catastrophic_patterns_run_in_linear_time() -> None:
    """`(a+)+b` on 8,000 characters: exponential with backtracking, instant with RE2.

    Run in a child process so that a backtracking matcher fails this test at the
    (generous) bound instead of hanging the suite.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CATASTROPHIC],
        capture_output=True,
        timeout=60,
        check=True,
        cwd=pathlib.Path(__file__).parents[3],
    )
    assert done.stdout.strip() == b"HookNotAllowed"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(?=x).*", "invalid perl operator"),
        ("(a)\\1", "invalid escape"),
        (".{0,8191}", "repetition"),
    ],
)
def test_patterns_re2_cannot_run_are_rejected_at_load(pattern: str, problem: str) -> None:
    with pytest.raises(WhitelistError) as caught:
        Whitelist.parse(f"commands:\n  jq: {{path: /usr/bin/jq, args: ['{pattern}']}}\n")
    assert "not a valid RE2 regular expression" in str(caught.value)
    assert problem in str(caught.value)


def test_last_arg_and_refuse_shape_the_argument_list() -> None:
    whitelist = Whitelist.parse(
        "commands:\n  jq:\n    path: /usr/bin/jq\n    args: ['-[cr]+']\n"
        "    lastArg: '[^-].*'\n    refuse: ['\\bimport\\b']\n"
    )
    assert whitelist.check("jq", ["-c", "-r", ".a"]) == "/usr/bin/jq"
    for args, expected in [
        ([], "needs at least one argument"),
        (["-c"], "the last argument of 'jq' ('-c') does not match"),
        (
            [".", "/etc/passwd"],
            "argument 1 of 'jq' ('.') does not match any allowed pattern before",
        ),
        (['import "x" as $x; $x'], "contains 'import'"),
    ]:
        with pytest.raises(HookError) as caught:
            whitelist.check("jq", args)
        assert expected in caught.value.message
