"""Registry: built-ins, create/unsupported types, the CRD consistency check, and metrics."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from generators import registry
from generators.base import (
    Fetched,
    FetchError,
    FetchResult,
    GeneratorSettings,
    NotModified,
    SourceGenerator,
    Validators,
)
from generators.registry import GeneratorRegistry
from generators.requests import HttpRequest
from tests.fixtures.origin import OriginServer


class _Static(SourceGenerator):
    type_name = "static"

    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings

    async def fetch(self, config: Any, previous: Validators | None = None) -> FetchResult:
        raise FetchError("static sources cannot be fetched", reason="Nope", transient=False)


def test_http_is_built_in() -> None:
    assert "http" in registry.supported_types()
    generator = registry.create("http", GeneratorSettings())
    assert generator.type_name == "http"
    assert generator.supports_conditional_fetch is True


def test_unknown_type_is_a_configuration_error() -> None:
    with pytest.raises(FetchError) as caught:
        registry.create("gopher", GeneratorSettings())
    assert (caught.value.reason, caught.value.transient) == ("UnsupportedGenerator", False)
    assert "gopher" in caught.value.message


def test_check_types_reports_both_directions() -> None:
    own = GeneratorRegistry()
    own.register("http", _Static)
    own.register("static", _Static)
    assert own.check_types(["http", "static"]) == []
    problems = own.check_types(["http", "ftp"])
    assert problems == [
        "the CRD allows generator type 'ftp' but this controller has no implementation",
        "generator type 'static' is implemented but the installed CRD does not allow it",
    ]


def test_default_registry_matches_its_own_types() -> None:
    assert registry.check_types(registry.supported_types()) == []
    assert registry.check_types([]) != []


def test_duplicate_registration_is_refused() -> None:
    own = GeneratorRegistry()
    own.register("static", _Static)
    with pytest.raises(ValueError, match="already registered"):
        own.register("static", _Static)


def _count(generator: str, outcome: str) -> float:
    labels = {"generator": generator, "outcome": outcome}
    return REGISTRY.get_sample_value("externalsource_source_requests_total", labels) or 0.0


def _observations(generator: str, outcome: str) -> float:
    labels = {"generator": generator, "outcome": outcome}
    name = "externalsource_source_request_duration_seconds_count"
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_created_generator_records_outcomes(origin: OriginServer) -> None:
    origin.set("/m", body=b"{}", etag='"v1"')
    origin.mode("/gone", status=404)
    generator = registry.create("http", GeneratorSettings(allow_loopback=True))
    before = {o: _count("http", o) for o in ("modified", "not_modified", "error")}
    timed = _observations("http", "not_modified")
    try:
        result = await generator.fetch(HttpRequest(url=origin.url("/m")))
        assert isinstance(result, Fetched)
        result.close()
        result2 = await generator.fetch(HttpRequest(url=origin.url("/m")), Validators(etag='"v1"'))
        assert isinstance(result2, NotModified)
        with pytest.raises(FetchError):
            await generator.fetch(HttpRequest(url=origin.url("/gone")))
    finally:
        await generator.aclose()
    for outcome in ("modified", "not_modified", "error"):
        assert _count("http", outcome) == before[outcome] + 1
    assert _observations("http", "not_modified") == timed + 1


async def test_new_generators_get_metrics_without_code_of_their_own() -> None:
    own = GeneratorRegistry()
    own.register("static", _Static)
    generator = own.create("static", GeneratorSettings())
    before = _count("static", "error")
    with pytest.raises(FetchError):
        await generator.fetch(object())
    assert _count("static", "error") == before + 1
