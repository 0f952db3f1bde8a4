"""The reconcile's small parts, each alone: the error protocol every room satisfies, merge-patch
diffs that remove stale keys, and progress reports written only for a slow change."""

from __future__ import annotations

import asyncio

import pytest

from controller.children import ArtifactConflictError
from controller.fetchrequest import SecretNotFoundError
from controller.patches import apply, merge_diff
from controller.pipeline import Failure
from controller.progress import ProgressReport
from controller.runtime.client import ApiError
from generators.base import FetchError
from hooks.spec import HookError
from storage.backend import StorageError


@pytest.mark.parametrize(
    "error",
    [
        FetchError("origin down", retry_after=3.0),
        StorageError("bucket gone"),
        HookError("jq failed"),
        SecretNotFoundError("secret x missing"),
        ArtifactConflictError("taken"),
        ApiError("patch ExternalSource a/b: HTTP 429", status=429, retry_after=2.0),
    ],
)
def test_every_rooms_error_speaks_the_one_protocol(error: Exception) -> None:
    assert isinstance(error, Failure)
    assert error.reason  # a condition reason users can alert on
    assert isinstance(error.transient, bool)


def test_a_429_is_transient_and_carries_retry_after_a_422_is_not() -> None:
    throttled = ApiError("x", status=429, retry_after=2.0)
    assert throttled.transient
    assert throttled.retry_after == 2.0
    assert ApiError("x", status=403).transient  # RBAC gets fixed: retry with backoff
    assert not ApiError("x", status=422).transient


def test_merge_diff_sends_only_changes_and_null_for_removed_keys() -> None:
    old = {"artifact": {"revision": "r1", "metadata": {"etag": '"1"', "last-modified": "a"}}}
    new = {"artifact": {"revision": "r2", "metadata": {"last-modified": "b"}}}
    patch = merge_diff(old, new)
    assert patch == {
        "artifact": {"revision": "r2", "metadata": {"last-modified": "b", "etag": None}}
    }
    assert apply(old, patch) == new
    assert merge_diff(new, new) == {}


@pytest.mark.looptime
async def test_a_quick_change_writes_no_progress() -> None:
    written: list[str] = []

    async def write(phase: str) -> None:
        written.append(phase)

    async with ProgressReport(delay=1.0, write=write) as progress:
        progress.phase("Fetching")
        await asyncio.sleep(0.5)
        progress.phase("Storing")
    await asyncio.sleep(2)
    assert written == []


@pytest.mark.looptime
async def test_a_slow_phase_is_written_once_and_a_quick_later_one_is_not() -> None:
    written: list[str] = []

    async def write(phase: str) -> None:
        written.append(phase)

    async with ProgressReport(delay=1.0, write=write) as progress:
        progress.phase("Fetching")
        await asyncio.sleep(3)
        progress.phase("Storing")  # over within the delay: not worth a write
        await asyncio.sleep(0.5)
    assert written == ["Fetching"]


@pytest.mark.looptime
async def test_leaving_waits_for_a_write_in_flight() -> None:
    finished: list[str] = []

    async def slow_write(phase: str) -> None:
        await asyncio.sleep(2)
        finished.append(phase)

    async with ProgressReport(delay=0.1, write=slow_write) as progress:
        progress.phase("ExecutingHooks")
        await asyncio.sleep(0.5)  # the write has started
    assert finished == ["ExecutingHooks"]  # the final status write comes after it
