"""Conditional fetch: HEAD first, fallbacks to a conditional GET, plain GET on change."""

from __future__ import annotations

from generators.base import Fetched, NotModified, Validators
from generators.http import HttpGenerator
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer
from tests.unit.generators.conftest import body_of

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


async def test_first_fetch_gets_body_validators_and_metadata(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b'{"a": 1}', etag='"v1"', last_modified=LAST_MODIFIED)
    result = await http.fetch(HttpRequest(url=origin.url("/flags")))
    assert isinstance(result, Fetched)
    assert result.size == 8
    assert result.validators == Validators(etag='"v1"', last_modified=LAST_MODIFIED)
    assert result.metadata == {
        "etag": '"v1"',
        "last-modified": LAST_MODIFIED,
        "content-type": "application/json",
    }
    assert body_of(result) == b'{"a": 1}'
    assert [r.method for r in origin.requests] == ["GET"]


async def test_unchanged_etag_is_answered_by_head_304_alone(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='"v1"'))
    assert result == NotModified(Validators(etag='"v1"'))
    [head] = origin.requests
    assert head.method == "HEAD"
    assert head.headers["If-None-Match"] == '"v1"'


async def test_head_200_with_same_etag_is_not_modified(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    origin.mode("/flags", conditional=False)
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='W/"v1"'))
    assert isinstance(result, NotModified)
    assert [r.method for r in origin.requests] == ["HEAD"]


async def test_head_405_falls_back_to_conditional_get_304(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    origin.mode("/flags", head="405")
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='"v1"'))
    assert isinstance(result, NotModified)
    head, get = origin.requests
    assert (head.method, get.method) == ("HEAD", "GET")
    assert get.headers["If-None-Match"] == '"v1"'


async def test_head_501_falls_back_to_conditional_get_that_returns_new_body(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"new", etag='"v2"')
    origin.mode("/flags", head="501")
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='"v1"'))
    assert body_of(result) == b"new"
    assert [r.method for r in origin.requests] == ["HEAD", "GET"]
    assert origin.requests[1].headers["If-None-Match"] == '"v1"'


async def test_head_without_validators_falls_back_to_conditional_get(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"{}", etag='"v1"')
    origin.mode("/flags", head="no-validators")
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='"v0"'))
    assert isinstance(result, Fetched)
    result.close()
    get = origin.requests[1]
    assert get.method == "GET"
    assert get.headers["If-None-Match"] == '"v0"'


async def test_head_with_a_different_etag_leads_to_a_plain_get(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"v2 body", etag='"v2"')
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), Validators(etag='"v1"'))
    assert body_of(result) == b"v2 body"
    head, get = origin.requests
    assert head.method == "HEAD"
    assert "If-None-Match" not in get.headers


async def test_last_modified_alone_drives_the_conditional_get(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/flags", body=b"{}", last_modified=LAST_MODIFIED)
    origin.mode("/flags", head="405")
    previous = Validators(last_modified=LAST_MODIFIED)
    result = await http.fetch(HttpRequest(url=origin.url("/flags")), previous)
    assert result == NotModified(previous)
    assert origin.requests[1].headers["If-Modified-Since"] == LAST_MODIFIED


async def test_other_methods_send_body_once_and_never_head(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/query", body=b"answer", etag='"v1"')
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        origin.clear_requests()
        request = HttpRequest(url=origin.url("/query"), method=method.lower(), body=b"question")
        result = await http.fetch(request, Validators(etag='"v1"'))
        assert body_of(result) == b"answer"
        [sent] = origin.requests
        assert (sent.method, sent.body) == (method, b"question")
        assert "If-None-Match" not in sent.headers


async def test_request_headers_are_sent(http: HttpGenerator, origin: OriginServer) -> None:
    origin.set("/flags", body=b"{}")
    request = HttpRequest(url=origin.url("/flags"), headers={"Authorization": "Bearer t"})
    body_of(await http.fetch(request))
    assert origin.requests[0].headers["Authorization"] == "Bearer t"


async def test_sources_with_the_same_tls_settings_share_connections(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/a", body=b"a")
    origin.set("/b", body=b"b")
    body_of(await http.fetch(HttpRequest(url=origin.url("/a"))))
    body_of(await http.fetch(HttpRequest(url=origin.url("/b"), headers={"X-Other": "1"})))
    first, second = origin.requests
    assert first.peer == second.peer
