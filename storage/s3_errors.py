"""Turn S3 failures into `StorageError`s: a reason, a one-line message, transient or not.

botocore has already retried what deserves a retry (throttling, 5xx,
connection errors; `--s3-max-attempts` with jittered backoff) by the time an
error reaches here, so this only decides what the controller does next: a
missing bucket, refused or invalid credentials, a wrong region or TLS
verification failure cannot heal by retrying (`transient=False`, the
controller reports it and waits), while an unreachable, throttling or failing
server can (`transient=True`). Messages are built from a fixed vocabulary —
operation, bucket, endpoint, the S3 error code — never from a library
exception's text, which may carry request details.
"""

from __future__ import annotations

from typing import Final

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

from storage.backend import StorageError
from storage.s3_settings import INVALID_CREDENTIALS

BUCKET_NOT_FOUND: Final = "BucketNotFound"
ACCESS_DENIED: Final = "AccessDenied"
REQUEST_REJECTED: Final = "StorageRequestRejected"
TLS_VERIFICATION_FAILED: Final = "TLSVerificationFailed"
THROTTLED: Final = "StorageThrottled"
UNAVAILABLE: Final = "StorageUnavailable"
TIMEOUT: Final = "StorageTimeout"

_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"})
_BAD_KEYS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"})
_THROTTLING = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
_WRONG_REGION = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "301"})


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code (the HTTP status as text for bodiless HEAD answers) and status."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code or str(status), status


def is_not_found(exc: ClientError) -> bool:
    code, status = error_code(exc)
    return code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket")


def classify(exc: Exception, *, operation: str, bucket: str, endpoint: str) -> StorageError:
    """The `StorageError` for `exc` raised by `operation` on `bucket` at `endpoint`."""
    where = f"S3 {operation} in bucket {bucket!r} at {endpoint}"
    if isinstance(exc, ClientError):
        return _client_error(exc, where=where, bucket=bucket)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(
            f"{where}: no S3 credentials found (set --s3-credentials-dir or the AWS"
            " environment/profile)",
            reason=INVALID_CREDENTIALS,
            transient=False,
        )
    if isinstance(exc, SSLError):
        return StorageError(
            f"{where}: TLS verification of the endpoint failed (--s3-ca-bundle)",
            reason=TLS_VERIFICATION_FAILED,
            transient=False,
        )
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return StorageError(f"{where}: timed out (--s3-timeout)", reason=TIMEOUT)
    if isinstance(exc, EndpointConnectionError):
        return StorageError(f"{where}: cannot connect to the endpoint", reason=UNAVAILABLE)
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{where}: {type(exc).__name__}", reason=UNAVAILABLE)
    if isinstance(exc, OSError):
        return StorageError(
            f"{where}: {exc.strerror or type(exc).__name__}", reason="StorageOperationFailed"
        )
    return StorageError(f"{where}: {type(exc).__name__}", reason=UNAVAILABLE)


def _client_error(exc: ClientError, *, where: str, bucket: str) -> StorageError:
    code, status = error_code(exc)
    if code == "NoSuchBucket":
        return StorageError(
            f"{where}: bucket {bucket!r} does not exist (--s3-bucket)",
            reason=BUCKET_NOT_FOUND,
            transient=False,
        )
    if code in _BAD_KEYS:
        return StorageError(
            f"{where}: the endpoint rejected our credentials ({code})",
            reason=INVALID_CREDENTIALS,
            transient=False,
        )
    if code in _DENIED:
        return StorageError(
            f"{where}: access denied ({code}); the credentials need"
            " s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket",
            reason=ACCESS_DENIED,
            transient=False,
        )
    if code in _WRONG_REGION:
        return StorageError(
            f"{where}: the bucket is in another region than --s3-region ({code})",
            reason=REQUEST_REJECTED,
            transient=False,
        )
    if code in _THROTTLING or status in (429, 503):
        return StorageError(f"{where}: the endpoint is throttling ({code})", reason=THROTTLED)
    if status >= 500 or status in (0, 408):
        return StorageError(
            f"{where}: the endpoint failed ({code}, HTTP {status})", reason=UNAVAILABLE
        )
    return StorageError(
        f"{where}: the endpoint rejected the request ({code}, HTTP {status})",
        reason=REQUEST_REJECTED,
        transient=False,
    )
