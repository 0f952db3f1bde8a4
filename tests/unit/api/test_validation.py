"""validate_spec: every invalid spec gets one precise problem; nothing ever raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api import parse_external_source
from controller.api.models import ExternalSourceSpec, GeneratorSpec, HttpGeneratorSpec
from controller.api.validation import Problem, validate_source, validate_spec
from tests.unit.api.cases import CASES, Case, hook, valid_spec, with_changes


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_invalid_spec_gets_exactly_its_problem(case: Case) -> None:
    assert validate_spec(case.spec) == [Problem(case.path, case.message)]


def test_there_are_at_least_25_distinct_invalid_specs() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    assert len({(c.path, c.message) for c in CASES}) >= 25


def test_a_valid_spec_with_every_field_has_no_problem() -> None:
    spec = with_changes(
        {
            "timeout": "1m30s",
            "suspend": False,
            "destinationPath": "out/data.json",
            "maxRetries": 10,
            "generator.http.method": "POST",
            "generator.http.body": '{"q": 1}',
            "generator.http.headersSecretRef": {"name": "h"},
            "generator.http.caBundleSecretRef": {"name": "ca", "key": "bundle.pem"},
            "generator.http.certSecretRef": {"name": "mtls"},
            "generator.http.proxySecretRef": {"name": "proxy"},
            "generator.http.insecureSkipVerify": False,
            "hooks": {
                "preRequest": [hook(name="sign", args=["-c", "."])],
                "postRequest": [
                    hook(env=[{"name": "MODE", "value": "strict"}], timeout="500ms"),
                    hook(name="second", retryPolicy="ignore"),
                ],
            },
            "transform": {"cel": "data.items"},
        }
    )
    assert validate_spec(spec) == []


def test_every_problem_is_reported_at_once() -> None:
    spec: dict[str, Any] = {
        "interval": "10s",
        "destinationPath": "/abs",
        "maxRetries": 99,
        "generator": {"type": "http", "http": {"url": "gopher://x", "method": "get"}},
        "hooks": {"postRequest": [hook(), hook(retryPolicy="never")]},
    }
    assert [p.path for p in validate_spec(spec)] == [
        "spec.interval",
        "spec.destinationPath",
        "spec.maxRetries",
        "spec.generator.http.url",
        "spec.generator.http.method",
        "spec.hooks.postRequest[1].name",
        "spec.hooks.postRequest[1].retryPolicy",
    ]


def test_the_same_hook_name_may_appear_in_both_lists() -> None:
    spec = with_changes({"hooks": {"preRequest": [hook()], "postRequest": [hook()]}})
    assert validate_spec(spec) == []


def test_a_model_is_validated_like_its_wire_form() -> None:
    http = HttpGeneratorSpec(url="https://api.example.com")
    good = ExternalSourceSpec(interval="1h", generator=GeneratorSpec(type="http", http=http))
    assert validate_spec(good) == []
    bad = ExternalSourceSpec(
        interval="1h", max_retries=11, generator=GeneratorSpec(type="http", http=http)
    )
    assert validate_spec(bad) == [Problem("spec.maxRetries", "must be between 0 and 10, got 11")]


def test_a_missing_spec_is_one_problem() -> None:
    assert validate_spec(None) == [Problem("spec", "is required")]


def test_validate_source_checks_identity_and_name() -> None:
    document = {"apiVersion": "v1", "kind": "ExternalSource", "metadata": {}, "spec": valid_spec()}
    assert validate_source(document) == [
        Problem("apiVersion", "must be source.flux.oddkin.co/v1alpha1, got 'v1'"),
        Problem("metadata.name", "is required"),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
FIELD_PATHS = [
    "interval",
    "timeout",
    "suspend",
    "destinationPath",
    "maxRetries",
    "generator",
    "generator.type",
    "generator.http",
    "generator.http.url",
    "generator.http.method",
    "generator.http.headersSecretRef",
    "generator.http.caBundleSecretRef",
    "generator.s3",
    "hooks",
    "hooks.preRequest",
    "hooks.postRequest",
    "transform",
    "transform.cel",
]


@given(value=json_values, path=st.sampled_from(FIELD_PATHS))
def test_any_value_anywhere_gives_problems_never_an_exception(value: Any, path: str) -> None:
    spec = with_changes({path: value})
    problems = validate_spec(spec)
    assert all(isinstance(p, Problem) and p.path.startswith("spec") for p in problems)
    if not problems:
        parse_external_source({"metadata": {"name": "x"}, "spec": spec})


@given(value=json_values)
def test_any_value_as_the_whole_spec_never_raises(value: Any) -> None:
    assert all(isinstance(p, Problem) for p in validate_spec(value))


@given(items=st.lists(json_values, max_size=3))
def test_any_hook_list_items_never_raise(items: list[Any]) -> None:
    spec = with_changes({"hooks.postRequest": items})
    assert all(p.path.startswith("spec.hooks.postRequest") for p in validate_spec(spec))
