"""Turn S3 failures of the `s3` generator into `FetchError`s (reason, message, transient).

`s3common.diagnose` decides what kind of failure it was — the same decision the
s3 storage backend makes; this module says what it means for a source. Same
rules as the http generator where the meaning is the same (connection
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

from botocore.exceptions import ClientError

from generators import reasons
from generators.address_guard import AddressNotAllowedError
from generators.base import FetchError
from s3common import Kind, S3Failure, diagnose

BUCKET_NOT_FOUND: Final = "BucketNotFound"
OBJECT_NOT_FOUND: Final = "ObjectNotFound"
ACCESS_DENIED: Final = "AccessDenied"
INVALID_CREDENTIALS: Final = "InvalidCredentials"

#: kind → (reason, message after "<where>: ", transient); `{code}`, `{status}`, `{detail}`
_MEANING: Final[dict[Kind, tuple[str, str, bool]]] = {
    Kind.BUCKET_NOT_FOUND: (BUCKET_NOT_FOUND, "the bucket does not exist", False),
    Kind.OBJECT_NOT_FOUND: (OBJECT_NOT_FOUND, "no such object (yet)", True),
    Kind.CREDENTIALS_REJECTED: (
        INVALID_CREDENTIALS,
        "the endpoint rejected the credentials ({code})",
        False,
    ),
    Kind.ACCESS_DENIED: (
        ACCESS_DENIED,
        "access denied ({code}); the credentials need s3:GetObject",
        False,
    ),
    Kind.WRONG_REGION: (
        reasons.ORIGIN_REJECTED_REQUEST,
        "the bucket is in another region than spec.generator.s3.region ({code})",
        False,
    ),
    Kind.THROTTLED: (reasons.RATE_LIMITED, "the endpoint is throttling ({code})", True),
    Kind.SERVER_FAILED: (
        reasons.ORIGIN_UNAVAILABLE,
        "the endpoint failed ({code}, HTTP {status})",
        True,
    ),
    Kind.REJECTED: (
        reasons.ORIGIN_REJECTED_REQUEST,
        "the endpoint rejected the request ({code}, HTTP {status})",
        False,
    ),
    Kind.NO_CREDENTIALS: (
        INVALID_CREDENTIALS,
        "no credentials (set the source's credentials Secret)",
        False,
    ),
    Kind.TLS_VERIFICATION: (
        reasons.TLS_VERIFICATION_FAILED,
        "TLS verification of the endpoint failed (check the CA bundle)",
        False,
    ),
    Kind.TIMEOUT: (reasons.TIMEOUT, "the endpoint did not answer in time", True),
    Kind.UNREACHABLE: (reasons.CONNECTION_FAILED, "cannot connect to the endpoint", True),
    Kind.CONNECTION_BROKEN: (reasons.CONNECTION_FAILED, "the connection broke", True),
    Kind.OS_ERROR: (reasons.CONNECTION_FAILED, "{detail}", True),
    Kind.OTHER: (reasons.FETCH_FAILED, "{detail}", True),
}


def is_retryable(exc: ClientError) -> bool:
    """Throttling or a failing server: worth asking again (a 4xx is not)."""
    return diagnose(exc).kind in (Kind.THROTTLED, Kind.SERVER_FAILED)


def classify(exc: Exception, *, where: str) -> FetchError:
    """The `FetchError` for `exc`, raised while fetching `where` (``s3://bucket/key …``)."""
    refused = _refused_address(exc)
    if refused is not None:
        return FetchError(
            f"{where}: {refused.host} is a link-local or cloud metadata address, refused "
            "(--allow-link-local-addresses)",
            reason=reasons.ADDRESS_NOT_ALLOWED,
            transient=False,
        )
    return _fetch_error(diagnose(exc), where=where)


def _fetch_error(failure: S3Failure, *, where: str) -> FetchError:
    reason, text, transient = _MEANING[failure.kind]
    message = text.format(code=failure.code, status=failure.status, detail=failure.detail)
    return FetchError(f"{where}: {message}", reason=reason, transient=transient)


def _refused_address(exc: BaseException) -> AddressNotAllowedError | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, AddressNotAllowedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
