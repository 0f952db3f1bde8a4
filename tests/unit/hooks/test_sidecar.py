"""The real sidecar subprocess as the security boundary: auth, whitelist, no shell, limits, logs."""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.fixtures.sidecar import DEFAULT_WHITELIST, SidecarProcess


async def execute(
    sidecar: SidecarProcess,
    payload: dict[str, Any],
    *,
    token: str | None = "from-file",
) -> tuple[int, dict[str, Any]]:
    headers = {}
    if token == "from-file":
        headers["Authorization"] = f"Bearer {sidecar.token}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {"args": [], "env": {}, "stdin": "", "timeout": 10, **payload}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sidecar.url}/v1/execute", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def test_allowed_command_transforms_stdin(hooks_sidecar: SidecarProcess) -> None:
    status, result = await execute(
        hooks_sidecar,
        {
            "command": "jq",
            "args": ["-c", ".items | map(.name)"],
            "stdin": b64(b'{"items":[{"name":"a"}]}'),
        },
    )
    assert status == 200
    assert base64.b64decode(result["stdout"]) == b'["a"]\n'
    assert result["exitCode"] == 0
    assert result["timedOut"] is False
    assert result["durationSeconds"] > 0


async def test_nonzero_exit_is_reported_with_the_stderr_tail(hooks_sidecar: SidecarProcess) -> None:
    status, result = await execute(
        hooks_sidecar, {"command": "jq", "args": [".a"], "stdin": b64(b"nope")}
    )
    assert status == 200
    assert result["exitCode"] != 0
    assert "parse error" in result["stderrTail"]


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("sh", ["-c", "id"], "command 'sh' is not in the hook whitelist"),
        ("/bin/sh", ["-c", "id"], "command '/bin/sh' is not in the hook whitelist"),
        ("../../bin/sh", [], "command '../../bin/sh' is not in the hook whitelist"),
        ("/usr/bin/jq", ["."], "command '/usr/bin/jq' is not in the hook whitelist"),
        ("jq", ["-f", "/etc/passwd"], "argument 1 of 'jq' ('-f') does not match"),
        ("sleep", ["1", "2"], "got 2 arguments, the whitelist allows at most 1"),
        ("sleep", ["$(touch /tmp/x)"], "argument 1 of 'sleep'"),
    ],
)
async def test_refused_commands_get_403_with_the_reason(
    hooks_sidecar: SidecarProcess, command: str, args: list[str], expected: str
) -> None:
    status, result = await execute(hooks_sidecar, {"command": command, "args": args})
    assert status == 403
    assert result["reason"] == "HookNotAllowed"
    assert expected in result["error"]


@pytest.mark.parametrize(
    "template",
    [
        '. | "; touch {f}"',
        '. | "$(touch {f})"',
        '. | "`touch {f}`"',
        ". && touch {f}",
        ".; touch {f}",
    ],
)
async def test_shell_metacharacters_are_never_interpreted(
    hooks_sidecar: SidecarProcess, tmp_path: pathlib.Path, template: str
) -> None:
    marker = tmp_path / "pwned"
    status, result = await execute(
        hooks_sidecar,
        {"command": "jq", "args": ["-r", template.format(f=marker)], "stdin": b64(b"{}")},
    )
    assert status == 200
    stdout = base64.b64decode(result["stdout"]).decode()
    # jq either prints the text literally or rejects the filter: no shell ever saw it
    assert result["exitCode"] != 0 or f"touch {marker}" in stdout
    assert not marker.exists()


async def test_wrong_or_missing_token_gets_401_and_nothing_runs(
    make_hooks_sidecar: Callable[..., SidecarProcess], tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "executed"
    sidecar = make_hooks_sidecar(
        whitelist=DEFAULT_WHITELIST + "  touch: {path: /usr/bin/touch, args: ['/.*']}\n"
    )
    for token in (None, "wrong", sidecar.token + "x", ""):
        status, result = await execute(
            sidecar, {"command": "touch", "args": [str(marker)]}, token=token
        )
        assert status == 401
        assert result == {"error": "missing or wrong bearer token"}
    assert not marker.exists()
    assert sidecar.log_events("hooks.sidecar.execution") == []

    status, _ = await execute(sidecar, {"command": "touch", "args": [str(marker)]})
    assert status == 200
    assert marker.exists()


async def test_timeout_kills_the_whole_process_group(
    make_hooks_sidecar: Callable[..., SidecarProcess], tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "forker"
    script.write_text('#!/bin/sh\nsleep 300 &\necho $! > "$PIDFILE"\nsleep 300\n')
    script.chmod(0o755)
    pidfile = tmp_path / "child.pid"
    sidecar = make_hooks_sidecar(
        whitelist=f"commands:\n  forker: {{path: {script}, maxArgs: 0, env: [PIDFILE]}}\n"
    )
    started = time.monotonic()
    status, result = await execute(
        sidecar, {"command": "forker", "env": {"PIDFILE": str(pidfile)}, "timeout": 1}
    )
    assert status == 200
    assert result["timedOut"] is True
    assert result["exitCode"] == -9
    assert time.monotonic() - started < 10
    assert wait_gone(int(pidfile.read_text())), "the forked child survived its hook"


async def test_background_children_do_not_outlive_a_hook_that_exits(
    make_hooks_sidecar: Callable[..., SidecarProcess], tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "daemonizer"
    script.write_text("#!/bin/sh\nsleep 300 &\necho $!\n")
    script.chmod(0o755)
    sidecar = make_hooks_sidecar(whitelist=f"commands:\n  daemonizer: {{path: {script}}}\n")
    started = time.monotonic()
    status, result = await execute(sidecar, {"command": "daemonizer", "timeout": 30})
    assert status == 200
    assert result["exitCode"] == 0
    assert time.monotonic() - started < 10  # not held until the timeout by the child's pipe
    assert wait_gone(int(base64.b64decode(result["stdout"])))


async def test_output_over_the_cap_fails_cleanly(
    make_hooks_sidecar: Callable[..., SidecarProcess],
) -> None:
    sidecar = make_hooks_sidecar(extra_args=("--max-stdout", "1000"))
    status, result = await execute(
        sidecar, {"command": "jq", "args": ["-c", ". | [range(1000)]"], "stdin": b64(b"null")}
    )
    assert status == 422
    assert result == {"error": "jq: output exceeded 1000 bytes", "reason": "HookFailed"}
    status, result = await execute(
        sidecar, {"command": "jq", "args": ["-c", ". | [range(10)]"], "stdin": b64(b"null")}
    )
    assert status == 200


async def test_malformed_requests_get_400(hooks_sidecar: SidecarProcess) -> None:
    for payload, expected in (
        ({"command": 1}, "'command' must be a string"),
        ({"command": "jq", "args": [1]}, "'args' must be a list of strings"),
        ({"command": "jq", "timeout": 0}, "'timeout' must be in"),
        ({"command": "jq", "stdin": "!!"}, "'stdin' must be base64"),
    ):
        status, result = await execute(hooks_sidecar, payload)
        assert status == 400
        assert expected in result["error"]


async def test_whitelist_reload_without_restart(hooks_sidecar: SidecarProcess) -> None:
    status, _ = await execute(hooks_sidecar, {"command": "date"})
    assert status == 403

    hooks_sidecar.whitelist_path.write_text(
        DEFAULT_WHITELIST + "  date: {path: /usr/bin/date, maxArgs: 0}\n"
    )
    hooks_sidecar.wait_for_log('"generation": 2')
    status, result = await execute(hooks_sidecar, {"command": "date"})
    assert status == 200
    assert result["exitCode"] == 0

    hooks_sidecar.whitelist_path.write_text("commands:\n  date: {path: bin/date}\n")
    hooks_sidecar.wait_for_log("hooks.whitelist.reload_failed")
    status, _ = await execute(hooks_sidecar, {"command": "date"})
    assert status == 200  # the broken file did not replace the working whitelist
    assert hooks_sidecar.process.poll() is None


async def test_logs_name_the_execution_but_never_env_values_or_stdin(
    hooks_sidecar: SidecarProcess,
) -> None:
    hooks_sidecar.whitelist_path.write_text(
        DEFAULT_WHITELIST.replace("maxArgs: 8", "maxArgs: 8\n    env: [API_TOKEN]")
    )
    hooks_sidecar.wait_for_log('"generation": 2')
    status, _ = await execute(
        hooks_sidecar,
        {
            "command": "jq",
            "args": ["-c", ".a"],
            "env": {"API_TOKEN": "s3cr3t-env-value"},
            "stdin": b64(b'{"a": "s3cr3t-stdin-value"}'),
        },
    )
    assert status == 200
    logs = hooks_sidecar.logs()
    assert "s3cr3t" not in logs
    events = hooks_sidecar.log_events("hooks.sidecar.execution")
    assert [(e["command"], e["args"], e["outcome"], e["env_names"]) for e in events] == [
        ("jq", ["-c", ".a"], "success", ["API_TOKEN"])
    ]
    assert isinstance(events[0]["duration"], float)


async def test_the_hook_sees_only_its_env_and_a_minimal_path(
    make_hooks_sidecar: Callable[..., SidecarProcess],
) -> None:
    sidecar = make_hooks_sidecar(
        whitelist="commands:\n  env: {path: /usr/bin/env, maxArgs: 0, env: [MODE]}\n"
    )
    status, result = await execute(sidecar, {"command": "env", "env": {"MODE": "strict"}})
    assert status == 200
    lines = sorted(base64.b64decode(result["stdout"]).decode().splitlines())
    assert lines == ["MODE=strict", "PATH=/usr/local/bin:/usr/bin:/bin"]
    assert os.environ.get("HOME", "") not in {line.split("=", 1)[1] for line in lines}


async def test_sigterm_stops_the_sidecar_cleanly(hooks_sidecar: SidecarProcess) -> None:
    hooks_sidecar.process.terminate()
    assert hooks_sidecar.process.wait(timeout=15) == 0
    assert hooks_sidecar.log_events("hooks.sidecar.stopping")


async def test_a_full_sidecar_answers_429_after_the_request_timeout(
    make_hooks_sidecar: Callable[..., SidecarProcess],
) -> None:
    sidecar = make_hooks_sidecar(extra_args=("--max-concurrent", "1"))
    busy = asyncio.create_task(execute(sidecar, {"command": "sleep", "args": ["3"], "timeout": 10}))
    pid = sidecar.process.pid
    children = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    while not children.read_text().strip():  # until the first request holds the only slot
        await asyncio.sleep(0.02)
    status, result = await execute(sidecar, {"command": "sleep", "args": ["0"], "timeout": 0.5})
    assert status == 429
    assert result == {"error": "all 1 execution slots are busy"}
    assert (await busy)[0] == 200


async def test_a_rotated_token_applies_without_restart(hooks_sidecar: SidecarProcess) -> None:
    old = hooks_sidecar.token
    hooks_sidecar.token_file.write_text("rotated-token\n")
    status, _ = await execute(hooks_sidecar, {"command": "sleep", "args": ["0"]}, token=old)
    assert status == 401
    status, _ = await execute(
        hooks_sidecar, {"command": "sleep", "args": ["0"]}, token="rotated-token"
    )
    assert status == 200


SETSID_HOOK = """#!/bin/sh
# a grandchild in its own session, holding the hook's stdout open
setsid sh -c 'echo $$ > "$PIDFILE"; exec sleep 300' &
sleep 0.2
echo done
"""


async def test_a_setsid_child_is_killed_when_its_hook_exits(
    make_hooks_sidecar: Callable[..., SidecarProcess], tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "escaper"
    script.write_text(SETSID_HOOK)
    script.chmod(0o755)
    pidfile = tmp_path / "escaped.pid"
    sidecar = make_hooks_sidecar(
        whitelist=f"commands:\n  escaper: {{path: {script}, maxArgs: 0, env: [PIDFILE]}}\n"
    )
    status, result = await execute(
        sidecar, {"command": "escaper", "env": {"PIDFILE": str(pidfile)}, "timeout": 60}
    )
    assert status == 200
    assert result["exitCode"] == 0
    assert result["timedOut"] is False  # answered when the hook exited, not at the timeout
    assert base64.b64decode(result["stdout"]) == b"done\n"
    assert wait_gone(int(pidfile.read_text())), "the setsid grandchild survived its hook"


async def test_setsid_hooks_at_their_timeout_free_their_slots(
    make_hooks_sidecar: Callable[..., SidecarProcess], tmp_path: pathlib.Path
) -> None:
    """Two slots, setsid hooks that never end: each slot is freed at the hook's timeout."""
    script = tmp_path / "escaper"
    script.write_text(SETSID_HOOK.replace("echo done", "sleep 300"))
    script.chmod(0o755)
    sidecar = make_hooks_sidecar(
        whitelist=DEFAULT_WHITELIST
        + f"  escaper: {{path: {script}, maxArgs: 0, env: [PIDFILE]}}\n",
        extra_args=("--max-concurrent", "2"),
    )
    pidfiles = [tmp_path / f"escaped-{i}.pid" for i in range(4)]
    results = await asyncio.gather(
        *(
            execute(sidecar, {"command": "escaper", "env": {"PIDFILE": str(p)}, "timeout": 1})
            for p in pidfiles
        )
    )
    # 4 hooks, 2 slots: the last two waited for a slot at most their own timeout (1 s);
    # slots freed at the first two's timeouts, so at least those two ran and timed out
    timed_out = [r for status, r in results if status == 200 and r["timedOut"]]
    assert len(timed_out) >= 2, results
    for pidfile in pidfiles:
        if pidfile.exists():
            assert wait_gone(int(pidfile.read_text())), "a setsid grandchild survived"
    status, result = await execute(
        sidecar, {"command": "jq", "args": ["-c", "."], "stdin": b64(b"[1]"), "timeout": 10}
    )
    assert status == 200, result  # every slot is free again


async def test_hundred_thousand_deep_json_is_a_400(hooks_sidecar: SidecarProcess) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{hooks_sidecar.url}/v1/execute",
            data=deep,
            headers={
                "Authorization": f"Bearer {hooks_sidecar.token}",
                "Content-Type": "application/json",
            },
        ) as response,
    ):
        assert response.status == 400
        assert await response.json() == {"error": "request body is nested too deeply"}
