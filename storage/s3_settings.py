"""Settings of the `s3` storage backend (flags `--s3-*`) and where its credentials come from.

Kept apart from `StorageSettings` because none of it matters to the other
backends; the controller's config loader composes it like any room's settings.
Credentials come either from the standard AWS chain (environment, profile,
web identity / IRSA, instance metadata) when `--s3-credentials-dir` is empty,
or from a mounted Secret directory holding the files `accesskey` and
`secretkey` (the MinIO convention), re-read by the backend before each
operation so that a rotated Secret takes effect without a restart.
"""

from __future__ import annotations

import pathlib

import attrs

from storage import reasons
from storage.backend import StorageError

#: S3's smallest allowed multipart part (every part but the last)
MIN_PART_SIZE = 5 * 1024 * 1024


@attrs.frozen
class S3Settings:
    """Where the `s3` backend stores artifacts and how it reaches the bucket."""

    s3_endpoint: str = attrs.field(
        default="",
        metadata={
            "flag": "--s3-endpoint",
            "help": "S3 endpoint URL (e.g. https://minio.example:9000); empty for AWS S3.",
        },
    )
    s3_bucket: str = attrs.field(
        default="",
        metadata={"flag": "--s3-bucket", "help": "Bucket the s3 storage backend writes to."},
    )
    s3_region: str = attrs.field(
        default="us-east-1",
        metadata={"flag": "--s3-region", "help": "Region of the bucket."},
    )
    s3_prefix: str = attrs.field(
        default="",
        metadata={
            "flag": "--s3-prefix",
            "help": "Key prefix under which artifacts are stored (e.g. flux/); empty for none.",
        },
    )
    s3_path_style: bool = attrs.field(
        default=False,
        metadata={
            "flag": "--s3-path-style",
            "help": "Use path-style addressing (endpoint/bucket/key), as MinIO usually needs.",
        },
    )
    s3_ca_bundle: str = attrs.field(
        default="",
        metadata={
            "flag": "--s3-ca-bundle",
            "help": "PEM file of CA certificates trusted for the S3 endpoint (default: system).",
        },
    )
    s3_insecure_skip_verify: bool = attrs.field(
        default=False,
        metadata={
            "flag": "--s3-insecure-skip-verify",
            "help": "Do not verify the S3 endpoint's TLS certificate (testing only).",
        },
    )
    s3_credentials_dir: str = attrs.field(
        default="",
        metadata={
            "flag": "--s3-credentials-dir",
            "help": "Directory with files accesskey and secretkey (a mounted Secret);"
            " empty uses the standard AWS credential chain.",
        },
    )
    s3_timeout: float = attrs.field(
        default=30.0,
        validator=attrs.validators.gt(0),
        metadata={
            "flag": "--s3-timeout",
            "help": "Connect and read timeout of each S3 request.",
            "duration": True,
        },
    )
    s3_max_attempts: int = attrs.field(
        default=5,
        validator=attrs.validators.ge(1),
        metadata={
            "flag": "--s3-max-attempts",
            "help": "Attempts per S3 request on throttling, 5xx and connection errors"
            " (exponential backoff with jitter between them).",
        },
    )
    s3_part_size: int = attrs.field(
        default=8 * 1024 * 1024,
        validator=attrs.validators.ge(MIN_PART_SIZE),
        metadata={
            "flag": "--s3-part-size",
            "help": "Multipart upload part size in bytes (at least 5 MiB); smaller artifacts"
            " are uploaded in one request.",
        },
    )
    s3_upload_concurrency: int = attrs.field(
        default=4,
        validator=attrs.validators.ge(1),
        metadata={
            "flag": "--s3-upload-concurrency",
            "help": "Parts of one artifact uploaded in parallel (memory: part size times this).",
        },
    )

    def key_prefix(self) -> str:
        """The prefix as stored: no leading slash, one trailing slash, or empty."""
        prefix = self.s3_prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    def verify(self) -> str | bool | None:
        """botocore's `verify=`: False, a CA bundle path, or None for the system store."""
        if self.s3_insecure_skip_verify:
            return False
        return self.s3_ca_bundle or None


def static_credentials(settings: S3Settings) -> tuple[str, str] | None:
    """(access key, secret key) from `--s3-credentials-dir`, or None for the AWS chain."""
    if not settings.s3_credentials_dir:
        return None
    directory = pathlib.Path(settings.s3_credentials_dir)
    try:
        access_key = (directory / "accesskey").read_text().strip()
        secret_key = (directory / "secretkey").read_text().strip()
    except OSError as exc:
        raise StorageError(
            f"cannot read S3 credentials from {directory} (--s3-credentials-dir):"
            f" {exc.strerror or type(exc).__name__} ({exc.filename})",
            reason=reasons.INVALID_CREDENTIALS,
            transient=False,
        ) from None
    if not access_key or not secret_key:
        raise StorageError(
            f"S3 credentials in {directory} (--s3-credentials-dir):"
            " accesskey or secretkey is empty",
            reason=reasons.INVALID_CREDENTIALS,
            transient=False,
        )
    return access_key, secret_key
