"""botocore exceptions → one `Kind` of failure, with the S3 error code and HTTP status.

The order of the checks matters: botocore's `SSLError` and `ConnectTimeoutError`
are also connection errors, and aiohttp's `ClientOSError` and some of botocore's
connection errors are also `OSError`s; the more precise kind wins. An S3 error
code is read from the response (for a bodiless HEAD answer botocore puts the
HTTP status there as text, hence "404" and "403" among the codes). Nothing here
keeps a library exception's text: it may carry request details, and the rooms
build their messages from a fixed vocabulary plus `code`, `status` and `detail`.
"""

from __future__ import annotations

import enum
from typing import Final

import aiohttp
import attrs
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError


class Kind(enum.Enum):
    """What kind of failure an S3 call had; each room maps it to a reason and a hint."""

    # the endpoint answered
    BUCKET_NOT_FOUND = "bucket-not-found"
    OBJECT_NOT_FOUND = "object-not-found"
    CREDENTIALS_REJECTED = "credentials-rejected"
    ACCESS_DENIED = "access-denied"
    WRONG_REGION = "wrong-region"
    THROTTLED = "throttled"
    SERVER_FAILED = "server-failed"
    REJECTED = "rejected"
    # it did not, or not usefully
    NO_CREDENTIALS = "no-credentials"
    TLS_VERIFICATION = "tls-verification"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    CONNECTION_BROKEN = "connection-broken"
    OS_ERROR = "os-error"
    OTHER = "other"


NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
)
BAD_KEY_CODES: Final = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"})
THROTTLING_CODES: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
WRONG_REGION_CODES: Final = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "301"})


@attrs.frozen
class S3Failure:
    """The kind of a failure; `code`/`status` when the endpoint answered, else "" and 0.

    `detail` is safe to show: an OS error's strerror or an exception's class name.
    """

    kind: Kind
    code: str = ""
    status: int = 0
    detail: str = ""


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code (the HTTP status as text for bodiless HEAD answers) and status."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code or str(status), status


def diagnose(exc: BaseException) -> S3Failure:
    """The kind of failure `exc` is (never raises)."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        return S3Failure(_answered(code, status), code, status)
    return S3Failure(_unanswered(exc), detail=_detail(exc))


def _answered(code: str, status: int) -> Kind:
    if code == "NoSuchBucket":
        return Kind.BUCKET_NOT_FOUND
    if code in NOT_FOUND_CODES or status == 404:
        return Kind.OBJECT_NOT_FOUND
    if code in BAD_KEY_CODES:
        return Kind.CREDENTIALS_REJECTED
    if code in DENIED_CODES:
        return Kind.ACCESS_DENIED
    if code in WRONG_REGION_CODES:
        return Kind.WRONG_REGION
    if code in THROTTLING_CODES or status in (429, 503):
        return Kind.THROTTLED
    if status >= 500 or status in (0, 408):
        return Kind.SERVER_FAILED
    return Kind.REJECTED


def _unanswered(exc: BaseException) -> Kind:
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return Kind.NO_CREDENTIALS
    if isinstance(exc, SSLError):
        return Kind.TLS_VERIFICATION
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return Kind.TIMEOUT
    if isinstance(exc, EndpointConnectionError):
        return Kind.UNREACHABLE
    if isinstance(exc, (aiohttp.ClientError, BotoConnectionError, HTTPClientError)):
        return Kind.CONNECTION_BROKEN
    if isinstance(exc, OSError):
        return Kind.OS_ERROR
    return Kind.OTHER


def _detail(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
