"""The s3 generator against a real S3-compatible server: bodies, conditional fetch, limits."""

from __future__ import annotations

import pytest

from generators.base import Fetched, FetchError, NotModified, Validators
from generators.s3 import S3Generator
from tests.fixtures.s3 import MotoServer
from tests.unit.generators.s3.conftest import request_for


async def _fetched(
    generator: S3Generator, request: object, previous: Validators | None = None
) -> Fetched:
    result = await generator.fetch(request, previous)
    assert isinstance(result, Fetched)
    return result


async def test_first_fetch_returns_body_validators_and_metadata(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    moto_server.client("s3").put_object(
        Bucket=s3_bucket, Key="cfg/flags.json", Body=b'{"a": 1}', ContentType="application/json"
    )

    with await _fetched(
        generator, request_for(moto_server, s3_bucket, "cfg/flags.json")
    ) as fetched:
        assert fetched.body.read() == b'{"a": 1}'
        assert fetched.size == 8
        head = moto_server.client("s3").head_object(Bucket=s3_bucket, Key="cfg/flags.json")
        assert fetched.validators.etag == head["ETag"]
        assert fetched.validators.last_modified is not None
        assert fetched.validators.last_modified.endswith(" GMT")
        assert fetched.metadata == {
            "etag": head["ETag"],
            "last-modified": fetched.validators.last_modified,
            "content-type": "application/json",
        }


async def test_unchanged_object_is_not_modified(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="k", Body=b"v1")
    request = request_for(moto_server, s3_bucket, "k")
    with await _fetched(generator, request) as first:
        validators = first.validators

    again = await generator.fetch(request, validators)

    assert isinstance(again, NotModified)
    assert again.validators.etag == validators.etag


async def test_changed_object_is_fetched_again(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    client = moto_server.client("s3")
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"v1")
    request = request_for(moto_server, s3_bucket, "k")
    with await _fetched(generator, request) as first:
        validators = first.validators
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"version two")

    with await _fetched(generator, request, validators) as second:
        assert second.body.read() == b"version two"
        assert second.validators.etag != validators.etag


async def test_validators_without_an_etag_fetch_the_body(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="k", Body=b"v1")
    previous = Validators(last_modified="Mon, 01 Jan 2024 00:00:00 GMT")

    with await _fetched(generator, request_for(moto_server, s3_bucket, "k"), previous) as fetched:
        assert fetched.body.read() == b"v1"


async def test_object_larger_than_the_limit_is_refused(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="big", Body=b"x" * (1024 * 1024 + 1))

    with pytest.raises(FetchError) as caught:
        await generator.fetch(request_for(moto_server, s3_bucket, "big"))

    assert caught.value.reason == "ResponseTooLarge"
    assert caught.value.transient is False


async def test_object_at_the_limit_is_accepted(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    body = b"y" * (1024 * 1024)
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="max", Body=body)

    with await _fetched(generator, request_for(moto_server, s3_bucket, "max")) as fetched:
        assert fetched.size == len(body)
        assert fetched.body.read() == body


@pytest.mark.parametrize("previous", [None, Validators(etag='"old"')])
async def test_missing_object_is_transient(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator, previous: Validators | None
) -> None:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(request_for(moto_server, s3_bucket, "later.json"), previous)

    assert caught.value.reason == "ObjectNotFound"
    assert caught.value.transient is True
    assert f"s3://{s3_bucket}/later.json" in caught.value.message


async def test_object_created_later_is_picked_up(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    request = request_for(moto_server, s3_bucket, "later.json")
    with pytest.raises(FetchError):
        await generator.fetch(request)
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="later.json", Body=b"{}")

    with await _fetched(generator, request) as fetched:
        assert fetched.body.read() == b"{}"


@pytest.mark.parametrize("previous", [None, Validators(etag='"old"')])
async def test_missing_bucket_is_a_configuration_error(
    moto_server: MotoServer, generator: S3Generator, previous: Validators | None
) -> None:
    with pytest.raises(FetchError) as caught:
        await generator.fetch(request_for(moto_server, "no-such-bucket", "k"), previous)

    assert caught.value.reason == "BucketNotFound"
    assert caught.value.transient is False


async def test_default_credential_chain_is_used_without_a_secret(
    moto_server: MotoServer, s3_bucket: str, generator: S3Generator
) -> None:
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="k", Body=b"chain")
    request = request_for(moto_server, s3_bucket, "k", access_key=None, secret_key=None)

    with await _fetched(generator, request) as fetched:
        assert fetched.body.read() == b"chain"


async def test_wrong_request_type_is_refused(generator: S3Generator) -> None:
    with pytest.raises(FetchError) as caught:
        await generator.fetch("s3://bucket/key")

    assert caught.value.reason == "InvalidRequest"
    assert caught.value.transient is False
