"""Redirects: limited, followed per hop, and credentials never follow to another origin."""

from __future__ import annotations

import pytest

from generators.base import FetchError, GeneratorSettings
from generators.http import HttpGenerator
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer
from tests.unit.generators.conftest import body_of

SECRET_HEADERS = {"Authorization": "Bearer tok", "Cookie": "session=abc", "X-Api-Key": "k"}


async def test_same_origin_redirect_keeps_request_headers(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/old", redirect="/new", redirect_status=301)
    origin.set("/new", body=b"moved")
    request = HttpRequest(url=origin.url("/old"), headers=SECRET_HEADERS)
    assert body_of(await http.fetch(request)) == b"moved"
    [new] = origin.requests_for("/new")
    assert new.headers["Authorization"] == "Bearer tok"
    assert new.headers["X-Api-Key"] == "k"


async def test_redirect_to_another_server_drops_every_request_header(
    http: HttpGenerator, origin: OriginServer, second_origin: OriginServer
) -> None:
    origin.mode("/old", redirect=second_origin.url("/data"))
    second_origin.set("/data", body=b"elsewhere")
    request = HttpRequest(url=origin.url("/old"), headers=SECRET_HEADERS)
    assert body_of(await http.fetch(request)) == b"elsewhere"
    [received] = second_origin.requests
    assert not {"Authorization", "Cookie", "X-Api-Key"} & set(received.headers)


async def test_redirect_to_another_host_name_on_the_same_port_drops_credentials(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/old", redirect=origin.url("/new", host="localhost"))
    origin.mode("/new", redirect=origin.url("/final"))
    origin.set("/final", body=b"x")
    request = HttpRequest(url=origin.url("/old"), headers=SECRET_HEADERS)
    assert body_of(await http.fetch(request)) == b"x"
    assert "Authorization" in origin.requests_for("/old")[0].headers
    # dropped at the cross-host hop and not restored when coming back
    assert "Authorization" not in origin.requests_for("/new")[0].headers
    assert "Authorization" not in origin.requests_for("/final")[0].headers


async def test_see_other_turns_post_into_get_without_body(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/submit", redirect="/result", redirect_status=303)
    origin.set("/result", body=b"done")
    request = HttpRequest(url=origin.url("/submit"), method="POST", body=b"payload")
    assert body_of(await http.fetch(request)) == b"done"
    [result] = origin.requests_for("/result")
    assert (result.method, result.body) == ("GET", b"")


async def test_temporary_redirect_keeps_method_and_body(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/submit", redirect="/result", redirect_status=307)
    origin.set("/result", body=b"done")
    request = HttpRequest(url=origin.url("/submit"), method="POST", body=b"payload")
    body_of(await http.fetch(request))
    [result] = origin.requests_for("/result")
    assert (result.method, result.body) == ("POST", b"payload")


async def test_redirect_loop_is_a_configuration_error(
    settings: GeneratorSettings, origin: OriginServer
) -> None:
    origin.mode("/loop", redirect="/loop")
    generator = HttpGenerator(
        GeneratorSettings(max_redirects=3, spool_dir=settings.spool_dir, allow_loopback=True)
    )
    try:
        with pytest.raises(FetchError) as caught:
            await generator.fetch(HttpRequest(url=origin.url("/loop")))
    finally:
        await generator.aclose()
    assert caught.value.reason == "TooManyRedirects"
    assert caught.value.transient is False
    assert len(origin.requests) == 4


async def test_redirect_without_location_is_reported(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.mode("/odd", status=302)
    with pytest.raises(FetchError) as caught:
        await http.fetch(HttpRequest(url=origin.url("/odd")))
    assert caught.value.reason == "InvalidRedirect"


async def test_url_credentials_are_sent_as_basic_auth_and_dropped_across_hosts(
    http: HttpGenerator, origin: OriginServer, second_origin: OriginServer
) -> None:
    origin.mode("/old", redirect=second_origin.url("/data"))
    second_origin.set("/data", body=b"x")
    url = origin.url("/old").replace("http://", "http://reader:pw@")
    body_of(await http.fetch(HttpRequest(url=url)))
    assert origin.requests[0].headers["Authorization"] == "Basic cmVhZGVyOnB3"
    assert "Authorization" not in second_origin.requests[0].headers


async def test_explicit_authorization_header_wins_over_url_credentials(
    http: HttpGenerator, origin: OriginServer
) -> None:
    origin.set("/data", body=b"x")
    url = origin.url("/data").replace("http://", "http://reader:pw@")
    body_of(await http.fetch(HttpRequest(url=url, headers={"Authorization": "Bearer t"})))
    assert origin.requests[0].headers["Authorization"] == "Bearer t"
