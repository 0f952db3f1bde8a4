"""The generator contract shared by every source type and by the controller.

One interface, plain values in and out, so that adding a source type touches
only this room plus one registration line (see `registry.py`). Errors carry a
condition reason and a message written for `kubectl describe`; `transient`
tells the controller whether to retry with backoff or to stall until the spec
changes. Messages never contain header or credential values.
"""

from __future__ import annotations

import abc
from typing import IO, Any

import attrs


@attrs.frozen
class Validators:
    """What the origin told us about the version it served (conditional fetch)."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@attrs.frozen
class NotModified:
    """The origin confirmed the previous version is still current."""

    validators: Validators


@attrs.define
class Fetched:
    """A fetched body spooled to a temporary file, positioned at offset 0.

    The caller owns `body` and must `close()` it (closing removes the temp file);
    `with fetched:` does that.
    """

    body: IO[bytes]
    size: int
    validators: Validators
    metadata: dict[str, str] = attrs.field(factory=dict)

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> Fetched:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


FetchResult = NotModified | Fetched


class FetchError(Exception):
    """A fetch failed; `reason` is a condition reason, `message` is for humans.

    `transient=True` means retry with backoff (network, 5xx, 429, timeouts);
    `False` means a configuration problem that a retry cannot fix (TLS
    verification, 4xx, refused address). `retry_after` carries an origin's
    `Retry-After` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "FetchFailed",
        transient: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


@attrs.frozen
class GeneratorSettings:
    """Process-wide limits every generator honours (composed by controller/config.py)."""

    max_body_size: int = attrs.field(
        default=100 * 1024 * 1024,
        metadata={
            "flag": "--max-artifact-size",
            "help": "Maximum size in bytes of a fetched body.",
        },
    )
    allow_link_local: bool = attrs.field(
        default=False,
        metadata={
            "flag": "--allow-link-local-addresses",
            "help": "Allow fetching from link-local and cloud metadata addresses "
            "(169.254.0.0/16, fd00:ec2::254).",
        },
    )
    allow_loopback: bool = attrs.field(
        default=False,
        metadata={
            "flag": "--allow-loopback-addresses",
            "help": "Allow fetching from loopback addresses (127.0.0.0/8, ::1, 0.0.0.0), for "
            "tests and local mode; refused by default so a source cannot publish the pod's "
            "own endpoints.",
        },
    )
    max_redirects: int = attrs.field(
        default=10,
        metadata={"flag": "--max-redirects", "help": "Maximum redirects followed per request."},
    )
    spool_dir: str | None = attrs.field(
        default=None,
        metadata={
            "flag": "--spool-dir",
            "help": "Directory for temporary files (default: the system temp dir).",
        },
    )
    spool_memory_threshold: int = attrs.field(
        default=1024 * 1024,
        metadata={
            "flag": "--spool-memory-threshold",
            "help": "Bodies up to this many bytes stay in memory.",
        },
    )


class SourceGenerator(abc.ABC):
    """Fetches one source's data. Instances are reused across reconciles."""

    #: the `spec.generator.type` value this generator serves
    type_name: str = ""
    #: whether `fetch` can answer `NotModified` for a previous validator
    supports_conditional_fetch: bool = False

    @abc.abstractmethod
    async def fetch(self, config: Any, previous: Validators | None = None) -> FetchResult:
        """Fetch `config` (a typed request of this generator's type).

        With `previous` set, the generator may answer `NotModified`; with
        `None` it always returns the full body.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release pooled connections."""
