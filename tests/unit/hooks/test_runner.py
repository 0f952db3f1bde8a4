"""HookRunner against the real sidecar (and LocalExecutor): chains, policies, shared budget."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from hooks.executor import ExecutorUnavailable, LocalExecutor, SidecarExecutor
from hooks.runner import HookRunner
from hooks.spec import HookError, HookSpec, RetryBudget
from hooks.whitelist import Whitelist
from tests.fixtures.sidecar import DEFAULT_WHITELIST, SidecarProcess

FLAKY = """#!/bin/sh
# fails (exit 7) on its first $FAILS runs, then prints $PREFIX and its stdin
n=$(cat "$COUNTER" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$COUNTER"
if [ "$n" -le "$FAILS" ]; then echo "attempt $n failed" >&2; exit 7; fi
printf '%s' "$PREFIX"
cat
"""

REQUEST = {"url": "https://api.example.com/flags", "method": "GET", "headers": {}, "body": None}


@pytest.fixture
def flaky(tmp_path: pathlib.Path) -> pathlib.Path:
    script = tmp_path / "flaky"
    script.write_text(FLAKY)
    script.chmod(0o755)
    return script


@pytest.fixture
def whitelist_text(flaky: pathlib.Path) -> str:
    return DEFAULT_WHITELIST + (
        f"  flaky: {{path: {flaky}, maxArgs: 0, env: [COUNTER, FAILS, PREFIX]}}\n"
        "  flaky2: {path: " + str(flaky) + ", maxArgs: 0, env: [COUNTER, FAILS, PREFIX]}\n"
    )


@pytest.fixture
def sidecar(
    make_hooks_sidecar: Callable[..., SidecarProcess], whitelist_text: str
) -> SidecarProcess:
    return make_hooks_sidecar(whitelist=whitelist_text)


@pytest_asyncio.fixture
async def runner(sidecar: SidecarProcess, whitelist_text: str) -> AsyncIterator[HookRunner]:
    executor = SidecarExecutor(sidecar.url, str(sidecar.token_file))
    yield HookRunner(executor, Whitelist.parse(whitelist_text), backoff_factor=0.01)
    await executor.aclose()


def flaky_hook(
    tmp_path: pathlib.Path,
    *,
    fails: int,
    policy: str,
    name: str = "flaky",
    command: str = "flaky",
    prefix: str = "ok:",
) -> HookSpec:
    return HookSpec(
        name=name,
        command=command,
        env={"COUNTER": str(tmp_path / f"{name}.count"), "FAILS": str(fails), "PREFIX": prefix},
        retry_policy=policy,  # type: ignore[arg-type]
    )


def runs(tmp_path: pathlib.Path, name: str = "flaky") -> int:
    return int((tmp_path / f"{name}.count").read_text())


def executions(phase: str, command: str, outcome: str) -> float:
    labels = {"phase": phase, "command": command, "outcome": outcome}
    return REGISTRY.get_sample_value("externalsource_hook_executions_total", labels) or 0.0


async def test_pre_request_hook_changes_the_request_description(runner: HookRunner) -> None:
    hook = HookSpec(name="add-header", command="jq", args=("-c", '.headers["X-Mode"] = "strict"'))
    before = executions("pre", "jq", "success")
    result = await runner.run_pre(REQUEST, [hook], RetryBudget(3))
    assert result == {**REQUEST, "headers": {"X-Mode": "strict"}}
    assert executions("pre", "jq", "success") == before + 1


async def test_pre_request_hook_printing_something_else_fails(runner: HookRunner) -> None:
    hook = HookSpec(name="broken", command="jq", args=("-c", ".url"))
    with pytest.raises(HookError) as caught:
        await runner.run_pre(REQUEST, [hook], RetryBudget(0))
    assert caught.value.reason == "HookFailed"
    assert "hook 'broken' (jq) printed an invalid request description" in caught.value.message


async def test_post_request_hooks_chain_in_order(runner: HookRunner) -> None:
    hooks = [
        HookSpec(name="items", command="jq", args=("-c", ".items")),
        HookSpec(name="names", command="jq", args=("-c", ". | map(.name)")),
    ]
    body = b'{"items": [{"name": "a"}, {"name": "b"}]}'
    assert await runner.run_post(body, hooks, RetryBudget(0)) == b'["a","b"]\n'
    with pytest.raises(HookError):  # the other order cannot work: proves the order is kept
        await runner.run_post(body, hooks[::-1], RetryBudget(0))


async def test_no_hooks_keep_the_raw_body(runner: HookRunner) -> None:
    assert await runner.run_post(b"raw", [], RetryBudget(0)) == b"raw"


async def test_fail_policy_names_hook_exit_code_and_stderr(
    runner: HookRunner, tmp_path: pathlib.Path
) -> None:
    budget = RetryBudget(3)
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"x", [flaky_hook(tmp_path, fails=1, policy="fail")], budget)
    error = caught.value
    assert error.reason == "HookFailed"
    assert error.hook == "flaky"
    assert error.message == "hook 'flaky' (flaky) exited with code 7; stderr: attempt 1 failed"
    assert error.transient is True
    assert budget.remaining == 3
    assert runs(tmp_path) == 1


async def test_ignore_policy_passes_the_input_through(
    runner: HookRunner, tmp_path: pathlib.Path
) -> None:
    before = executions("post", "flaky", "failure")
    hooks = [
        flaky_hook(tmp_path, fails=9, policy="ignore"),
        HookSpec(name="names", command="jq", args=("-c", ".a")),
    ]
    assert await runner.run_post(b'{"a": 1}', hooks, RetryBudget(3)) == b"1\n"
    assert runs(tmp_path) == 1
    assert executions("post", "flaky", "failure") == before + 1


async def test_retry_policy_retries_while_the_budget_lasts(
    runner: HookRunner, tmp_path: pathlib.Path
) -> None:
    budget = RetryBudget(3)
    hook = flaky_hook(tmp_path, fails=2, policy="retry")
    assert await runner.run_post(b"data", [hook], budget) == b"ok:data"
    assert runs(tmp_path) == 3
    assert budget.remaining == 1


async def test_retry_policy_fails_when_the_budget_is_exhausted(
    runner: HookRunner, tmp_path: pathlib.Path
) -> None:
    budget = RetryBudget(2)
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"data", [flaky_hook(tmp_path, fails=5, policy="retry")], budget)
    assert runs(tmp_path) == 3
    assert budget.remaining == 0
    assert "stderr: attempt 3 failed" in caught.value.message
    assert "gave up after 3 attempts: retry budget exhausted" in caught.value.message


async def test_the_budget_is_shared_by_all_hooks_of_one_reconcile(
    runner: HookRunner, tmp_path: pathlib.Path
) -> None:
    budget = RetryBudget(3)
    pre = flaky_hook(tmp_path, fails=2, policy="retry", name="pre", prefix="")
    post = flaky_hook(tmp_path, fails=2, policy="retry", name="post", command="flaky2")
    assert await runner.run_pre(REQUEST, [pre], budget) == REQUEST
    assert budget.remaining == 1
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"d", [post], budget)
    assert caught.value.hook == "post"
    assert runs(tmp_path, "pre") == 3
    assert runs(tmp_path, "post") == 2  # only one retry was left for the post hook
    assert budget.remaining == 0


async def test_not_whitelisted_hooks_are_refused_before_anything_runs(
    runner: HookRunner, sidecar: SidecarProcess
) -> None:
    hook = HookSpec(name="evil", command="sh", args=("-c", "id"), retry_policy="ignore")
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"x", [hook], RetryBudget(3))
    assert caught.value.reason == "HookNotAllowed"
    assert caught.value.transient is False
    assert caught.value.message.startswith("hook 'evil': command 'sh' is not in the hook whitelist")
    assert sidecar.log_events("hooks.sidecar.execution") == []


async def test_the_sidecar_enforces_its_own_whitelist(sidecar: SidecarProcess) -> None:
    lenient = Whitelist.parse("commands:\n  cat: {path: /bin/cat}\n")
    executor = SidecarExecutor(sidecar.url, str(sidecar.token_file))
    try:
        runner = HookRunner(executor, lenient)
        with pytest.raises(HookError) as caught:
            await runner.run_post(b"x", [HookSpec(name="c", command="cat")], RetryBudget(3))
    finally:
        await executor.aclose()
    assert caught.value.reason == "HookNotAllowed"
    assert "hooks sidecar refused: command 'cat' is not in the hook whitelist" in (
        caught.value.message
    )


async def test_without_a_whitelist_every_hook_is_refused(sidecar: SidecarProcess) -> None:
    runner = HookRunner(SidecarExecutor(sidecar.url, str(sidecar.token_file)), None)
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"x", [HookSpec(name="j", command="jq")], RetryBudget(3))
    assert caught.value.reason == "HookNotAllowed"
    assert "no hook whitelist is configured (--hooks-whitelist)" in caught.value.message


async def test_an_unreachable_sidecar_is_transient_and_never_ignored(
    whitelist_text: str, tmp_path: pathlib.Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("t")
    executor = SidecarExecutor(f"http://127.0.0.1:{port}", str(token))
    runner = HookRunner(executor, Whitelist.parse(whitelist_text), backoff_factor=0.01)
    hook = HookSpec(name="j", command="jq", args=(".",), retry_policy="ignore")
    try:
        with pytest.raises(ExecutorUnavailable) as caught:
            await runner.run_post(b"{}", [hook], RetryBudget(3))
    finally:
        await executor.aclose()
    assert caught.value.transient is True
    assert "is unreachable" in caught.value.message


async def test_timeouts_fail_with_the_hook_name(runner: HookRunner) -> None:
    hook = HookSpec(name="slow", command="sleep", args=("30",), timeout=0.5)
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"", [hook], RetryBudget(0))
    assert caught.value.message == "hook 'slow' (sleep) timed out after 0.5s"


async def test_local_executor_has_the_same_semantics(whitelist_text: str) -> None:
    whitelist = Whitelist.parse(whitelist_text)
    runner = HookRunner(LocalExecutor(whitelist, max_stdout=100), whitelist)
    hook = HookSpec(name="items", command="jq", args=("-c", ".items"))
    assert await runner.run_post(b'{"items": [1]}', [hook], RetryBudget(0)) == b"[1]\n"
    too_big = HookSpec(name="big", command="jq", args=("-c", ". | [range(100)]"))
    with pytest.raises(HookError) as caught:
        await runner.run_post(b"null", [too_big], RetryBudget(0))
    assert caught.value.message == "hook 'big' (jq) failed: output exceeded 100 bytes"
    with pytest.raises(HookError) as refused:
        await runner.run_post(b"", [HookSpec(name="s", command="sh")], RetryBudget(0))
    assert refused.value.reason == "HookNotAllowed"
