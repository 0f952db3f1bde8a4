"""One diagnosis of S3 failures, two meanings: the s3 generator and the s3 storage backend.

The rooms' own tests drive real S3 servers (moto) into each failure; these
check the shared table itself: every kind of failure has a meaning in both
rooms, and the two agree on which failures heal by retrying.
"""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from generators import s3_errors as fetch_errors
from s3common import Kind, diagnose
from storage import s3_errors as storage_errors


def answer(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")


SAMPLES: dict[Kind, BaseException] = {
    Kind.BUCKET_NOT_FOUND: answer("NoSuchBucket", 404),
    Kind.OBJECT_NOT_FOUND: answer("", 404),
    Kind.CREDENTIALS_REJECTED: answer("SignatureDoesNotMatch", 403),
    Kind.ACCESS_DENIED: answer("AccessDenied", 403),
    Kind.WRONG_REGION: answer("PermanentRedirect", 301),
    Kind.THROTTLED: answer("SlowDown", 503),
    Kind.SERVER_FAILED: answer("InternalError", 500),
    Kind.REJECTED: answer("InvalidArgument", 400),
    Kind.NO_CREDENTIALS: NoCredentialsError(),
    Kind.TLS_VERIFICATION: SSLError(endpoint_url="https://s3.test", error="bad cert"),
    Kind.TIMEOUT: ReadTimeoutError(endpoint_url="https://s3.test"),
    Kind.UNREACHABLE: EndpointConnectionError(endpoint_url="https://s3.test"),
    Kind.CONNECTION_BROKEN: ConnectionClosedError(endpoint_url="https://s3.test"),
    Kind.OS_ERROR: OSError(28, "No space left on device"),
    Kind.OTHER: ValueError("unexpected"),
}

#: the one place the rooms differ: an object not there *yet* heals for a source
#: (another pipeline writes it later); a missing artifact key is our own problem
ROOMS_DIFFER = {Kind.OBJECT_NOT_FOUND}


def test_there_is_a_sample_of_every_kind() -> None:
    assert set(SAMPLES) == set(Kind)
    assert {kind: diagnose(exc).kind for kind, exc in SAMPLES.items()} == {k: k for k in Kind}


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
def test_both_rooms_give_every_kind_a_reason_and_agree_on_retrying(kind: Kind) -> None:
    exc = SAMPLES[kind]
    assert isinstance(exc, Exception)
    fetch = fetch_errors.classify(exc, where="s3://flags/data.json")
    store = storage_errors.classify(exc, operation="put", bucket="artifacts", endpoint="s3.test")
    assert fetch.reason
    assert store.reason
    assert fetch.message.startswith("s3://flags/data.json: ")
    assert store.message.startswith("S3 put in bucket 'artifacts' at s3.test: ")
    if kind not in ROOMS_DIFFER:
        assert fetch.transient == store.transient


def test_a_library_message_never_reaches_the_text() -> None:
    secret = "AKIA-SECRET-IN-A-MESSAGE"
    for exc in (ValueError(secret), aiohttp.ClientPayloadError(secret)):
        fetch = fetch_errors.classify(exc, where="s3://b/k")
        store = storage_errors.classify(exc, operation="get", bucket="b", endpoint="e")
        assert secret not in fetch.message + store.message


def test_an_answer_carries_its_code_and_status() -> None:
    failure = diagnose(answer("SlowDown", 503))
    assert (failure.code, failure.status) == ("SlowDown", 503)
    assert diagnose(answer("", 404)).code == "404"  # bodiless HEAD answers
