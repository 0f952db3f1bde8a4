"""What went wrong in an S3 call, decided once for the s3 generator and the s3 storage backend.

Both leaf rooms talk to S3 through botocore and must read its failures alike: a
missing bucket, rejected keys, throttling or a dead endpoint mean the same thing
whether we were reading a user's object or writing an artifact. This package
decides the *kind* of a failure (`diagnose`); each room turns the kind into its
own error — `generators.FetchError`, `storage.StorageError` — with its own
reasons and hints (`generators/s3_errors.py`, `storage/s3_errors.py`).

It imports nothing of ours (an import-linter contract), so both rooms may import
it without importing each other (docs/architecture.md, "Rooms").
"""

from s3common.failures import Kind, S3Failure, diagnose, error_code

__all__ = ["Kind", "S3Failure", "diagnose", "error_code"]
