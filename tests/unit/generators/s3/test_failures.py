"""The s3 generator's failures as users see them: reason, retry or not, no secret in messages."""

from __future__ import annotations

import pathlib

import pytest

from generators.base import Fetched, FetchError, GeneratorSettings, Validators
from generators.s3 import S3Generator
from tests.fixtures.s3 import MotoServer
from tests.unit.generators.s3.conftest import request_for


@pytest.mark.parametrize("previous", [None, Validators(etag='"old"')])
async def test_wrong_secret_is_rejected_without_showing_it(
    private_moto_server: MotoServer, generator: S3Generator, previous: Validators | None
) -> None:
    access_key, secret_key = private_moto_server.enable_auth()
    bucket = private_moto_server.create_bucket()
    private_moto_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    request = request_for(private_moto_server, bucket, "k", secret_key="wrong-secret-value")

    with pytest.raises(FetchError) as caught:
        await generator.fetch(request, previous)

    assert caught.value.reason == "InvalidCredentials"
    assert caught.value.transient is False
    assert "SignatureDoesNotMatch" in caught.value.message
    assert "wrong-secret-value" not in caught.value.message
    assert "wrong-secret-value" not in repr(request)
    good = request_for(
        private_moto_server, bucket, "k", access_key=access_key, secret_key=secret_key
    )
    result = await generator.fetch(good)
    assert isinstance(result, Fetched)
    result.close()


async def test_unknown_access_key_and_denied_user(
    private_moto_server: MotoServer, generator: S3Generator
) -> None:
    private_moto_server.enable_auth()
    bucket = private_moto_server.create_bucket()
    iam = private_moto_server.client("iam")
    iam.create_user(UserName="nobody")
    nobody = iam.create_access_key(UserName="nobody")["AccessKey"]

    with pytest.raises(FetchError) as unknown:
        await generator.fetch(
            request_for(private_moto_server, bucket, "k", access_key="AKIAUNKNOWNKEY000000")
        )
    with pytest.raises(FetchError) as denied:
        await generator.fetch(
            request_for(
                private_moto_server,
                bucket,
                "k",
                access_key=nobody["AccessKeyId"],
                secret_key=nobody["SecretAccessKey"],
            )
        )

    assert (unknown.value.reason, unknown.value.transient) == ("InvalidCredentials", False)
    assert "InvalidAccessKeyId" in unknown.value.message
    assert (denied.value.reason, denied.value.transient) == ("AccessDenied", False)


async def test_half_a_credentials_secret_is_a_configuration_error(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(request_for(moto_server, s3_bucket, "k", secret_key=None))

    assert caught.value.reason == "InvalidRequest"
    assert "accesskey and secretkey" in caught.value.message


@pytest.mark.parametrize("endpoint", ["ftp://example.org", "not a url", "http://"])
async def test_endpoint_must_be_an_http_url(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator, endpoint: str
) -> None:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(request_for(moto_server, s3_bucket, "k", endpoint=endpoint))

    assert caught.value.reason == "InvalidRequest"
    assert caught.value.transient is False


@pytest.mark.parametrize("endpoint", ["http://169.254.169.254", "http://[fd00:ec2::254]:80"])
async def test_metadata_endpoint_is_refused(
    moto_server: MotoServer, generator: S3Generator, endpoint: str
) -> None:
    request = request_for(
        moto_server, "latest", "meta-data/iam/security-credentials/", endpoint=endpoint
    )

    with pytest.raises(FetchError) as caught:
        await generator.fetch(request)

    assert caught.value.reason == "AddressNotAllowed"
    assert caught.value.transient is False


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "http://0x7f.1:9", "http://[::1]:9"])
async def test_a_loopback_endpoint_is_refused_unless_allowed(
    moto_server: MotoServer, spool_dir: pathlib.Path, endpoint: str
) -> None:
    """The pod's own ports (metrics, the hooks sidecar) are not an S3 endpoint to publish."""
    generator = S3Generator(GeneratorSettings(spool_dir=str(spool_dir)))
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(request_for(moto_server, "b", "k", endpoint=endpoint))
    finally:
        await generator.aclose()
    assert caught.value.reason == "AddressNotAllowed"
    assert caught.value.transient is False
    assert "--allow-loopback-addresses" in caught.value.message


async def test_server_down_is_transient_and_recovers(
    private_moto_server: MotoServer, generator: S3Generator
) -> None:
    bucket = private_moto_server.create_bucket()
    request = request_for(private_moto_server, bucket, "k")
    private_moto_server.stop()

    with pytest.raises(FetchError) as caught:
        await generator.fetch(request)

    assert caught.value.reason == "ConnectionFailed"
    assert caught.value.transient is True
    private_moto_server.start()
    private_moto_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"back")
    result = await generator.fetch(request)
    assert isinstance(result, Fetched)
    with result:
        assert result.body.read() == b"back"


async def test_hung_server_hits_the_request_timeout(
    private_moto_server: MotoServer, generator: S3Generator
) -> None:
    bucket = private_moto_server.create_bucket()
    private_moto_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    private_moto_server.pause()
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(request_for(private_moto_server, bucket, "k", timeout=0.5))
    finally:
        private_moto_server.resume()

    assert caught.value.reason == "Timeout"
    assert caught.value.transient is True
    assert "0.5s" in caught.value.message


async def test_custom_ca_bundle_and_its_temp_file(
    tls_moto_server: MotoServer, spool_dir: pathlib.Path
) -> None:
    assert tls_moto_server.ca_file is not None
    ca_pem = pathlib.Path(tls_moto_server.ca_file).read_bytes()
    bucket = tls_moto_server.create_bucket()
    tls_moto_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"over tls")
    generator = S3Generator(GeneratorSettings(spool_dir=str(spool_dir), allow_loopback=True))
    try:
        with pytest.raises(FetchError) as untrusted:
            await generator.fetch(request_for(tls_moto_server, bucket, "k"))
        trusted = await generator.fetch(request_for(tls_moto_server, bucket, "k", ca_bundle=ca_pem))
        skipped = await generator.fetch(
            request_for(tls_moto_server, bucket, "k", insecure_skip_verify=True)
        )
        assert list(spool_dir.glob("s3-ca-*.pem")) != []
    finally:
        await generator.aclose()

    assert untrusted.value.reason == "TLSVerificationFailed"
    assert untrusted.value.transient is False
    for result in (trusted, skipped):
        assert isinstance(result, Fetched)
        with result:
            assert result.body.read() == b"over tls"
    assert list(spool_dir.glob("s3-ca-*.pem")) == []
