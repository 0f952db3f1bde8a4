"""What users see when S3 is misconfigured or down: reason, one-line message, retry or not."""

from __future__ import annotations

import io
import pathlib

import pytest

from storage.backend import StorageError
from storage.s3 import S3Backend, S3Settings
from tests.fixtures.s3 import MotoServer
from tests.unit.storage.s3.conftest import MakeBackend, read_all, write_credentials

KEY = "externalsource/default/flags/" + "c" * 64 + ".tar.gz"


async def test_check_passes_on_a_writable_bucket_and_leaves_nothing(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_prefix="flux")

    await backend.check()

    assert moto_server.client("s3").list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


async def test_missing_bucket_is_a_configuration_error(
    moto_server: MotoServer, make_backend: MakeBackend
) -> None:
    backend = make_backend(moto_server, "no-such-bucket")

    with pytest.raises(StorageError) as checked:
        await backend.check()
    with pytest.raises(StorageError) as put:
        await backend.put(KEY, io.BytesIO(b"x"))
    with pytest.raises(StorageError) as listed:
        await backend.list("externalsource/")

    for caught in (checked, put, listed):
        assert caught.value.reason == "BucketNotFound"
        assert caught.value.transient is False
        assert "'no-such-bucket' does not exist" in caught.value.message
    assert checked.value.message == (
        f"storage check failed: S3 write check in bucket 'no-such-bucket' at"
        f" {moto_server.endpoint}: bucket 'no-such-bucket' does not exist (--s3-bucket)"
    )


async def test_unreadable_credentials_dir_fails_the_check_in_one_line(
    moto_server: MotoServer, s3_bucket: str, make_backend: MakeBackend, tmp_path: pathlib.Path
) -> None:
    backend = make_backend(moto_server, s3_bucket, s3_credentials_dir=str(tmp_path / "absent"))

    with pytest.raises(StorageError) as caught:
        await backend.check()

    assert caught.value.reason == "InvalidCredentials"
    assert caught.value.transient is False
    assert "\n" not in caught.value.message
    assert "--s3-credentials-dir" in caught.value.message


async def test_server_down_is_transient_and_recovers_when_it_is_back(
    private_moto_server: MotoServer, make_backend: MakeBackend
) -> None:
    bucket = private_moto_server.create_bucket()
    backend = make_backend(private_moto_server, bucket, s3_max_attempts=1)
    await backend.put(KEY, io.BytesIO(b"before"))

    private_moto_server.stop()
    with pytest.raises(StorageError) as caught:
        await backend.put(KEY, io.BytesIO(b"during"))
    with pytest.raises(StorageError) as check:
        await backend.check()

    assert caught.value.reason == "StorageUnavailable"
    assert caught.value.transient is True
    assert "cannot connect" in caught.value.message
    assert check.value.transient is True
    private_moto_server.start()
    await backend.put(KEY, io.BytesIO(b"after"))
    assert await read_all(backend, KEY) == b"after"


async def test_hung_server_times_out_transiently_and_keeps_data(
    private_moto_server: MotoServer, make_backend: MakeBackend
) -> None:
    bucket = private_moto_server.create_bucket()
    backend = make_backend(private_moto_server, bucket, s3_timeout=0.5, s3_max_attempts=1)
    await backend.put(KEY, io.BytesIO(b"kept"))

    private_moto_server.pause()
    try:
        with pytest.raises(StorageError) as caught:
            await backend.stat(KEY)
    finally:
        private_moto_server.resume()

    assert caught.value.reason == "StorageTimeout"
    assert caught.value.transient is True
    assert await read_all(backend, KEY) == b"kept"


async def test_wrong_keys_are_rejected_and_a_rotated_secret_is_picked_up(
    private_moto_server: MotoServer, make_backend: MakeBackend, tmp_path: pathlib.Path
) -> None:
    access_key, secret_key = private_moto_server.enable_auth()
    bucket = private_moto_server.create_bucket()
    secret_dir = tmp_path / "secret"
    write_credentials(secret_dir, access_key, "not-the-secret")
    backend = make_backend(private_moto_server, bucket, s3_credentials_dir=str(secret_dir))

    with pytest.raises(StorageError) as caught:
        await backend.check()

    assert caught.value.reason == "InvalidCredentials"
    assert caught.value.transient is False
    assert "SignatureDoesNotMatch" in caught.value.message
    assert "not-the-secret" not in caught.value.message
    assert secret_key not in caught.value.message
    write_credentials(secret_dir, access_key, secret_key)
    await backend.check()
    await backend.put(KEY, io.BytesIO(b"rotated"))
    assert await read_all(backend, KEY) == b"rotated"


async def test_unknown_access_key_is_rejected(
    private_moto_server: MotoServer, make_backend: MakeBackend, tmp_path: pathlib.Path
) -> None:
    _, secret_key = private_moto_server.enable_auth()
    bucket = private_moto_server.create_bucket()
    directory = write_credentials(tmp_path / "secret", "AKIAUNKNOWNKEY000000", secret_key)
    backend = make_backend(private_moto_server, bucket, s3_credentials_dir=directory)

    with pytest.raises(StorageError) as caught:
        await backend.put(KEY, io.BytesIO(b"x"))

    assert caught.value.reason == "InvalidCredentials"
    assert "InvalidAccessKeyId" in caught.value.message


async def test_denied_user_gets_access_denied(
    private_moto_server: MotoServer, make_backend: MakeBackend, tmp_path: pathlib.Path
) -> None:
    private_moto_server.enable_auth()
    bucket = private_moto_server.create_bucket()
    iam = private_moto_server.client("iam")
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    directory = write_credentials(tmp_path / "s", key["AccessKeyId"], key["SecretAccessKey"])
    backend = make_backend(private_moto_server, bucket, s3_credentials_dir=directory)

    with pytest.raises(StorageError) as caught:
        await backend.check()

    assert caught.value.reason == "AccessDenied"
    assert caught.value.transient is False
    assert "s3:PutObject" in caught.value.message


def test_bucket_is_required() -> None:
    with pytest.raises(StorageError, match="--s3-bucket"):
        S3Backend(S3Settings())
