"""Backend construction from `--storage-backend`: one table, one line per backend.

Each entry maps a backend name to a constructor taking the `StorageSettings`
plus backend-specific keyword arguments (`**extra`, e.g. credentials the
controller resolved for s3). Adding a backend is one line in `BACKENDS`.
Every backend comes back wrapped in `InstrumentedBackend`, so storage metrics
are recorded the same way whatever the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storage import reasons
from storage.backend import StorageBackend, StorageError
from storage.filesystem import FilesystemBackend
from storage.memory import MemoryBackend
from storage.metrics import InstrumentedBackend
from storage.s3 import S3Backend
from storage.settings import StorageSettings

BackendConstructor = Callable[..., StorageBackend]

BACKENDS: dict[str, BackendConstructor] = {
    "memory": lambda settings, **extra: MemoryBackend(),
    "filesystem": lambda settings, **extra: FilesystemBackend(settings.storage_path),
    "s3": lambda settings, **extra: S3Backend(extra["s3"]),
}


def create_backend(settings: StorageSettings, **extra: Any) -> InstrumentedBackend:
    """The instrumented backend selected by `settings.storage_backend`."""
    constructor = BACKENDS.get(settings.storage_backend)
    if constructor is None:
        raise StorageError(
            f"storage backend {settings.storage_backend!r} is not available"
            f" (available: {', '.join(sorted(BACKENDS))})",
            reason=reasons.BACKEND_UNAVAILABLE,
            transient=False,
        )
    return InstrumentedBackend(constructor(settings, **extra))
