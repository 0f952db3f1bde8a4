"""Keeps the current whitelist of a file that may change while the process runs.

A ConfigMap volume updates by swapping a `..data` symlink, so neither the
watched path's mtime nor its inode is a reliable signal: the manager polls and
compares a hash of the *content*. A broken new file keeps the previous
whitelist (a typo must not open or close everything at once), is logged once
per distinct content, and shows in metrics. Readers take an immutable
`Whitelist` snapshot under a lock, so a check never sees half a reload.
`generation` increases on every successful change so the controller can retry
sources stalled on `HookNotAllowed` when the whitelist changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterable, Sequence

import structlog
from prometheus_client import Counter, Gauge

from hooks.spec import HOOK_NOT_ALLOWED, HookError
from hooks.whitelist import Whitelist, WhitelistError

log = structlog.get_logger(__name__)

RELOAD_ERRORS = Counter(
    "externalsource_hooks_whitelist_reload_errors_total",
    "Whitelist files that could not be read or parsed (the previous whitelist stays in force).",
)
LOADED = Gauge(
    "externalsource_hooks_whitelist_loaded",
    "1 when the whitelist file's current content is loaded, 0 when it is broken or unreadable.",
)
LAST_SUCCESS = Gauge(
    "externalsource_hooks_whitelist_last_reload_success_timestamp_seconds",
    "Unix time of the last successful whitelist (re)load.",
)


class WhitelistManager:
    """Loads `path` now and on every `reload()`; `run()` polls it until cancelled."""

    def __init__(self, path: str, *, reload_interval: float = 5.0) -> None:
        self.path = path
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        self._whitelist = Whitelist(commands={})
        self._generation = 0
        self._digest: bytes | None = None
        self._error: str | None = None
        self.reload()

    @property
    def whitelist(self) -> Whitelist:
        with self._lock:
            return self._whitelist

    @property
    def generation(self) -> int:
        """Starts at 1 after a successful initial load; +1 on each change of content."""
        with self._lock:
            return self._generation

    @property
    def error(self) -> str | None:
        """Why the file's current content is not in force, or None."""
        with self._lock:
            return self._error

    def check(self, command: str, args: Sequence[str], *, env: Iterable[str] = ()) -> str:
        with self._lock:
            whitelist, generation, error = self._whitelist, self._generation, self._error
        if generation == 0 and error is not None:
            raise HookError(
                f"the hook whitelist could not be loaded, no hook may run: {error}",
                reason=HOOK_NOT_ALLOWED,
            )
        return whitelist.check(command, args, env=env)

    def reload(self) -> bool:
        """Re-read the file; True when a new whitelist came into force."""
        try:
            with open(self.path, "rb") as file:
                content = file.read()
        except OSError as exc:
            return self._failed(f"cannot read {self.path}: {exc.strerror}", digest=None)
        digest = hashlib.sha256(content).digest()
        with self._lock:
            if digest == self._digest:
                return False
        try:
            whitelist = Whitelist.parse(content.decode("utf-8"))
        except (WhitelistError, UnicodeDecodeError) as exc:
            return self._failed(f"{self.path}: {exc}", digest=digest)
        with self._lock:
            self._whitelist = whitelist
            self._generation += 1
            self._digest = digest
            self._error = None
            generation = self._generation
        LOADED.set(1)
        LAST_SUCCESS.set_to_current_time()
        log.info(
            "hooks.whitelist.loaded",
            path=self.path,
            generation=generation,
            commands=sorted(whitelist.commands),
        )
        return True

    def _failed(self, message: str, *, digest: bytes | None) -> bool:
        with self._lock:
            repeated = self._error == message and self._digest == digest
            self._error = message
            self._digest = digest
            kept = self._generation
        LOADED.set(0)
        if not repeated:
            RELOAD_ERRORS.inc()
            log.error("hooks.whitelist.reload_failed", error=message, kept_generation=kept)
        return False

    async def run(self) -> None:
        """Poll the file every `reload_interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.reload_interval)
            await asyncio.to_thread(self.reload)
