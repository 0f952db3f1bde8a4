"""Turn S3 failures into `StorageError`s: a reason, a one-line message, transient or not.

`s3common.diagnose` decides what kind of failure it was — the same decision the
s3 generator makes; this module says what it means for the artifact store.
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

from botocore.exceptions import ClientError

from s3common import Kind, diagnose
from storage.backend import StorageError
from storage.reasons import (
    ACCESS_DENIED,
    BUCKET_NOT_FOUND,
    INVALID_CREDENTIALS,
    OPERATION_FAILED,
    REQUEST_REJECTED,
    THROTTLED,
    TIMEOUT,
    TLS_VERIFICATION_FAILED,
    UNAVAILABLE,
)

_REJECTED = (REQUEST_REJECTED, "the endpoint rejected the request ({code}, HTTP {status})", False)

#: kind → (reason, message after "<where>: ", transient); `{code}`, `{status}`,
#: `{detail}` and `{bucket}` are filled in
_MEANING: Final[dict[Kind, tuple[str, str, bool]]] = {
    Kind.BUCKET_NOT_FOUND: (
        BUCKET_NOT_FOUND,
        "bucket {bucket!r} does not exist (--s3-bucket)",
        False,
    ),
    Kind.OBJECT_NOT_FOUND: _REJECTED,
    Kind.CREDENTIALS_REJECTED: (
        INVALID_CREDENTIALS,
        "the endpoint rejected our credentials ({code})",
        False,
    ),
    Kind.ACCESS_DENIED: (
        ACCESS_DENIED,
        "access denied ({code}); the credentials need"
        " s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket",
        False,
    ),
    Kind.WRONG_REGION: (
        REQUEST_REJECTED,
        "the bucket is in another region than --s3-region ({code})",
        False,
    ),
    Kind.THROTTLED: (THROTTLED, "the endpoint is throttling ({code})", True),
    Kind.SERVER_FAILED: (UNAVAILABLE, "the endpoint failed ({code}, HTTP {status})", True),
    Kind.REJECTED: _REJECTED,
    Kind.NO_CREDENTIALS: (
        INVALID_CREDENTIALS,
        "no S3 credentials found (set --s3-credentials-dir or the AWS environment/profile)",
        False,
    ),
    Kind.TLS_VERIFICATION: (
        TLS_VERIFICATION_FAILED,
        "TLS verification of the endpoint failed (--s3-ca-bundle)",
        False,
    ),
    Kind.TIMEOUT: (TIMEOUT, "timed out (--s3-timeout)", True),
    Kind.UNREACHABLE: (UNAVAILABLE, "cannot connect to the endpoint", True),
    Kind.CONNECTION_BROKEN: (UNAVAILABLE, "the connection broke ({detail})", True),
    Kind.OS_ERROR: (OPERATION_FAILED, "{detail}", True),
    Kind.OTHER: (UNAVAILABLE, "{detail}", True),
}


def is_not_found(exc: ClientError) -> bool:
    """No such key (a missing bucket is not "not found": it is a configuration problem)."""
    return diagnose(exc).kind is Kind.OBJECT_NOT_FOUND


def classify(exc: Exception, *, operation: str, bucket: str, endpoint: str) -> StorageError:
    """The `StorageError` for `exc` raised by `operation` on `bucket` at `endpoint`."""
    failure = diagnose(exc)
    reason, text, transient = _MEANING[failure.kind]
    message = text.format(
        code=failure.code, status=failure.status, detail=failure.detail, bucket=bucket
    )
    where = f"S3 {operation} in bucket {bucket!r} at {endpoint}"
    return StorageError(f"{where}: {message}", reason=reason, transient=transient)
