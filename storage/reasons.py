"""Condition reasons storage puts on `StorageError.reason`, in one place.

The controller copies a reason verbatim into the `Ready`/`Stalled` condition
(and the ExternalArtifact's), so these are short CamelCase constants users
can grep for and alert on. Every backend reuses them where the meaning is the
same; the s3 backend's own are below its section.
"""

from __future__ import annotations

from typing import Final

# any backend
OPERATION_FAILED: Final = "StorageOperationFailed"
BACKEND_UNAVAILABLE: Final = "StorageBackendUnavailable"
INVALID_KEY: Final = "InvalidKey"

# s3: configuration problems (retrying cannot help until a flag or the bucket changes)
BUCKET_NOT_FOUND: Final = "BucketNotFound"
ACCESS_DENIED: Final = "AccessDenied"
INVALID_CREDENTIALS: Final = "InvalidCredentials"
REQUEST_REJECTED: Final = "StorageRequestRejected"
TLS_VERIFICATION_FAILED: Final = "TLSVerificationFailed"

# s3: transient problems
THROTTLED: Final = "StorageThrottled"
UNAVAILABLE: Final = "StorageUnavailable"
TIMEOUT: Final = "StorageTimeout"
