"""The models' wire form: camelCase, CRD defaults, None omitted, exact round trips."""

from __future__ import annotations

import copy
import json
from typing import Any

import cattrs
import pytest

from controller.api import (
    SpecError,
    from_wire,
    parse_external_source,
    to_wire,
)
from controller.api.models import (
    Condition,
    ExternalSourceStatus,
    Hook,
    ObjectMeta,
)
from controller.api.validation import Problem


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {"name": "flags", "namespace": "apps"},
        "spec": {
            "interval": "5m",
            "generator": {
                "type": "http",
                "http": {
                    "url": "https://api.example.com/flags",
                    "caBundleSecretRef": {"name": "ca"},
                },
            },
            "hooks": {"postRequest": [{"name": "to-json", "command": "jq"}]},
        },
    }


def full() -> dict[str, Any]:
    """An object as an API server returns it: defaults filled, status written."""
    return {
        "apiVersion": "source.flux.oddkin.co/v1alpha1",
        "kind": "ExternalSource",
        "metadata": {
            "name": "flags",
            "namespace": "apps",
            "uid": "6a3c-11",
            "generation": 4,
            "resourceVersion": "1207",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"sharding.fluxcd.io/key": "shard1"},
            "annotations": {"reconcile.fluxcd.io/requestedAt": "1700000000"},
            "finalizers": ["source.flux.oddkin.co/finalizer"],
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": {
            "interval": "1h30m",
            "timeout": "45s",
            "suspend": False,
            "destinationPath": "flags/data.json",
            "maxRetries": 2,
            "generator": {
                "type": "http",
                "http": {
                    "url": "https://api.example.com/flags",
                    "method": "POST",
                    "body": "{}",
                    "headersSecretRef": {"name": "headers"},
                    "caBundleSecretRef": {"name": "ca", "key": "bundle.pem"},
                    "certSecretRef": {"name": "mtls"},
                    "proxySecretRef": {"name": "proxy"},
                    "insecureSkipVerify": False,
                },
            },
            "hooks": {
                "preRequest": [],
                "postRequest": [
                    {
                        "name": "to-json",
                        "command": "jq",
                        "args": ["-c", "."],
                        "env": [{"name": "MODE", "value": "strict"}],
                        "timeout": "10s",
                        "retryPolicy": "retry",
                    }
                ],
            },
            "transform": {"cel": "data.items"},
        },
        "status": {
            "observedGeneration": 4,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "observedGeneration": 4,
                    "lastTransitionTime": "2026-01-02T03:05:00Z",
                    "reason": "Succeeded",
                    "message": "stored artifact for revision 'latest@sha256:ab'",
                }
            ],
            "artifact": {
                "path": "externalsource/apps/flags/ab.tar.gz",
                "url": "http://externalsource-controller.flux-system/externalsource/apps/flags/ab.tar.gz",
                "revision": "latest@sha256:ab",
                "digest": "sha256:ab",
                "size": 123,
                "lastUpdateTime": "2026-01-02T03:05:00Z",
                "metadata": {"org.opencontainers.image.revision": '"etag-1"'},
            },
            "lastHandledETag": '"etag-1"',
            "lastHandledReconcileAt": "1700000000",
        },
    }


def test_missing_optional_fields_take_the_crd_defaults() -> None:
    source = parse_external_source(minimal())
    spec = source.spec
    assert (spec.timeout, spec.suspend, spec.destination_path, spec.max_retries) == (
        "60s",
        False,
        "data",
        3,
    )
    assert spec.generator.http is not None
    assert spec.generator.http.method == "GET"
    assert spec.generator.http.insecure_skip_verify is False
    assert spec.generator.http.ca_bundle_secret_ref is not None
    assert spec.generator.http.ca_bundle_secret_ref.key == "ca.crt"
    assert spec.hooks is not None
    assert spec.hooks.post_request == [Hook(name="to-json", command="jq")]
    assert (spec.hooks.post_request[0].timeout, spec.hooks.post_request[0].retry_policy) == (
        "30s",
        "fail",
    )
    assert source.status == ExternalSourceStatus(observed_generation=-1)


def test_durations_are_kept_as_written_and_parsed_on_demand() -> None:
    spec = parse_external_source(full()).spec
    assert spec.interval == "1h30m"
    assert (spec.interval_seconds, spec.timeout_seconds) == (5400.0, 45.0)
    assert spec.hooks is not None
    assert spec.hooks.post_request[0].timeout_seconds == 10.0


def test_an_api_server_object_round_trips_exactly() -> None:
    document = full()
    assert to_wire(parse_external_source(copy.deepcopy(document))) == document


def test_unknown_metadata_is_kept_verbatim() -> None:
    source = parse_external_source(full())
    assert source.metadata.extra == {
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
    }
    assert source.metadata.creation_timestamp == "2026-01-02T03:04:05Z"


def test_wire_keys_are_camel_case_and_none_is_omitted() -> None:
    wire = to_wire(parse_external_source(minimal()))
    http = wire["spec"]["generator"]["http"]
    assert set(http) == {"url", "method", "caBundleSecretRef", "insecureSkipVerify"}
    assert "s3" not in wire["spec"]["generator"]
    assert "transform" not in wire["spec"]
    assert wire["status"] == {"observedGeneration": -1, "conditions": []}
    json.dumps(wire)


def test_etag_keeps_its_kubernetes_spelling() -> None:
    status = ExternalSourceStatus(last_handled_etag='"v2"')
    assert to_wire(status)["lastHandledETag"] == '"v2"'
    assert from_wire(ExternalSourceStatus, {"lastHandledETag": '"v2"'}) == status


def test_an_empty_list_is_kept_so_a_patch_can_clear_it() -> None:
    assert to_wire(ObjectMeta(name="x", finalizers=[])) == {"name": "x", "finalizers": []}


def test_explicit_nulls_count_as_absent() -> None:
    document = minimal()
    document["spec"]["timeout"] = None
    document["metadata"]["labels"] = None
    source = parse_external_source(document)
    assert source.spec.timeout == "60s"
    assert source.metadata.labels is None


def test_an_invalid_spec_raises_one_error_with_every_problem() -> None:
    document = minimal()
    document["spec"]["interval"] = "10s"
    document["spec"]["maxRetries"] = 12
    with pytest.raises(SpecError) as caught:
        parse_external_source(document)
    error = caught.value
    assert (error.reason, error.transient) == ("InvalidSpec", False)
    assert error.problems == [
        Problem("spec.interval", "must be at least 1m, got 10s"),
        Problem("spec.maxRetries", "must be between 0 and 10, got 12"),
    ]
    assert error.message == (
        "spec.interval: must be at least 1m, got 10s; "
        "spec.maxRetries: must be between 0 and 10, got 12"
    )


def test_wrong_types_outside_the_spec_are_a_spec_error_with_the_path() -> None:
    document = minimal()
    document["metadata"]["generation"] = "4"
    with pytest.raises(SpecError) as caught:
        parse_external_source(document)
    assert [p.path for p in caught.value.problems] == ["metadata.generation"]


def test_a_condition_has_the_metav1_shape() -> None:
    condition = Condition(
        type="Ready",
        status="False",
        observed_generation=3,
        last_transition_time="2026-01-02T03:04:05Z",
        reason="FetchFailed",
        message="origin answered 503",
    )
    assert to_wire(condition) == {
        "type": "Ready",
        "status": "False",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-01-02T03:04:05Z",
        "reason": "FetchFailed",
        "message": "origin answered 503",
    }
    with pytest.raises(cattrs.BaseValidationError) as caught:
        from_wire(Condition, {**to_wire(condition), "status": "Maybe"})
    assert "Maybe not in literal" in cattrs.transform_error(caught.value)[0]
