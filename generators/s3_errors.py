"""Turn S3 failures of the `s3` generator into `FetchError`s (reason, message, transient).

Same rules as the http generator where the meaning is the same (connection
trouble, timeouts, throttling and 5xx are transient; TLS verification and
other 4xx are configuration problems), plus S3's own codes. A missing object
is transient on purpose: objects are often written by another pipeline on its
own schedule, and a source created before its object should start working by
itself once the object appears (the controller retries with capped backoff,
and `ObjectNotFound` is visible on the condition meanwhile). A missing bucket,
refused or unknown keys and access denied stay configuration problems.

Messages are built here from a fixed vocabulary — bucket, key, redacted
endpoint, S3 error code — never from a library exception's text, so the
secret key (or a signature computed from it) cannot reach a condition.
"""

from __future__ import annotations

from typing import Final

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from generators import reasons
from generators.address_guard import AddressNotAllowedError
from generators.base import FetchError

BUCKET_NOT_FOUND: Final = "BucketNotFound"
OBJECT_NOT_FOUND: Final = "ObjectNotFound"
ACCESS_DENIED: Final = "AccessDenied"
INVALID_CREDENTIALS: Final = "InvalidCredentials"

_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"})
_BAD_KEYS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"})
_THROTTLING = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code (the HTTP status as text for bodiless HEAD answers) and status."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code or str(status), status


def is_retryable(exc: ClientError) -> bool:
    code, status = error_code(exc)
    return code in _THROTTLING or status >= 500 or status in (0, 408, 429)


def _refused_address(exc: BaseException) -> AddressNotAllowedError | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, AddressNotAllowedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: Exception, *, where: str) -> FetchError:
    """The `FetchError` for `exc`, raised while fetching `where` (``s3://bucket/key …``)."""
    if isinstance(exc, ClientError):
        return _client_error(exc, where=where)
    refused = _refused_address(exc)
    if refused is not None:
        return FetchError(
            f"{where}: {refused.host} is a link-local or cloud metadata address, refused "
            "(--allow-link-local-addresses)",
            reason=reasons.ADDRESS_NOT_ALLOWED,
            transient=False,
        )
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return FetchError(
            f"{where}: no credentials (set the source's credentials Secret)",
            reason=INVALID_CREDENTIALS,
            transient=False,
        )
    if isinstance(exc, SSLError):
        return FetchError(
            f"{where}: TLS verification of the endpoint failed (check the CA bundle)",
            reason=reasons.TLS_VERIFICATION_FAILED,
            transient=False,
        )
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return FetchError(f"{where}: the endpoint did not answer in time", reason=reasons.TIMEOUT)
    if isinstance(exc, EndpointConnectionError):
        return FetchError(
            f"{where}: cannot connect to the endpoint", reason=reasons.CONNECTION_FAILED
        )
    if isinstance(exc, aiohttp.ClientError):
        return FetchError(f"{where}: the connection broke", reason=reasons.CONNECTION_FAILED)
    if isinstance(exc, OSError):
        return FetchError(
            f"{where}: {exc.strerror or type(exc).__name__}", reason=reasons.CONNECTION_FAILED
        )
    if isinstance(exc, BotoCoreError):
        return FetchError(f"{where}: {type(exc).__name__}", reason=reasons.FETCH_FAILED)
    return FetchError(f"{where}: {type(exc).__name__}", reason=reasons.FETCH_FAILED)


def _client_error(exc: ClientError, *, where: str) -> FetchError:
    code, status = error_code(exc)
    if code == "NoSuchBucket":
        return FetchError(
            f"{where}: the bucket does not exist", reason=BUCKET_NOT_FOUND, transient=False
        )
    if code in ("NoSuchKey", "404", "NotFound"):
        return FetchError(f"{where}: no such object (yet)", reason=OBJECT_NOT_FOUND)
    if code in _BAD_KEYS:
        return FetchError(
            f"{where}: the endpoint rejected the credentials ({code})",
            reason=INVALID_CREDENTIALS,
            transient=False,
        )
    if code in _DENIED:
        return FetchError(
            f"{where}: access denied ({code}); the credentials need s3:GetObject",
            reason=ACCESS_DENIED,
            transient=False,
        )
    if code in _THROTTLING or status in (429, 503):
        return FetchError(
            f"{where}: the endpoint is throttling ({code})", reason=reasons.RATE_LIMITED
        )
    if is_retryable(exc):
        return FetchError(
            f"{where}: the endpoint failed ({code}, HTTP {status})",
            reason=reasons.ORIGIN_UNAVAILABLE,
        )
    return FetchError(
        f"{where}: the endpoint rejected the request ({code}, HTTP {status})",
        reason=reasons.ORIGIN_REJECTED_REQUEST,
        transient=False,
    )
