"""Invalid ExternalSource specs, each with the one problem the controller must report.

Shared by test_validation (the controller's message) and test_crd (the CRD
rejects the same spec, unless `crd` says the API server would prune the field
instead of rejecting it).
"""

from __future__ import annotations

import copy
from typing import Any

import attrs

DELETE = object()


def valid_spec() -> dict[str, Any]:
    return {
        "interval": "5m",
        "generator": {"type": "http", "http": {"url": "https://api.example.com/flags"}},
    }


def hook(**fields: Any) -> dict[str, Any]:
    return {"name": "to-json", "command": "jq", **fields}


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """valid_spec() with dotted paths set (or removed with DELETE)."""
    spec = valid_spec()
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
    return spec


@attrs.frozen
class Case:
    id: str
    spec: Any
    path: str
    message: str
    crd: bool = True  # False: the API server prunes the field rather than rejecting it


NOT_A_DURATION = "is not a duration like 30s, 5m or 1h30m (units ms, s, m, h)"
HOOK0 = "spec.hooks.postRequest[0]"

CASES = [
    Case("interval-missing", with_changes({"interval": DELETE}), "spec.interval", "is required"),
    Case(
        "interval-unparseable",
        with_changes({"interval": "5 minutes"}),
        "spec.interval",
        f"'5 minutes' {NOT_A_DURATION}",
    ),
    Case(
        "interval-go-unit-not-allowed",
        with_changes({"interval": "300000000us"}),
        "spec.interval",
        f"'300000000us' {NOT_A_DURATION}",
    ),
    Case(
        "interval-too-short",
        with_changes({"interval": "30s"}),
        "spec.interval",
        "must be at least 1m, got 30s",
    ),
    Case(
        "interval-number",
        with_changes({"interval": 300}),
        "spec.interval",
        "must be a string, not a number",
    ),
    Case("timeout-zero", with_changes({"timeout": "0s"}), "spec.timeout", "must be greater than 0"),
    Case("timeout-days", with_changes({"timeout": "1d"}), "spec.timeout", f"'1d' {NOT_A_DURATION}"),
    Case(
        "suspend-string",
        with_changes({"suspend": "yes"}),
        "spec.suspend",
        "must be true or false, not a string",
    ),
    Case(
        "destination-absolute",
        with_changes({"destinationPath": "/etc/passwd"}),
        "spec.destinationPath",
        "must be a relative path (no leading '/')",
    ),
    Case(
        "destination-dotdot",
        with_changes({"destinationPath": "data/../../etc"}),
        "spec.destinationPath",
        "must not contain '..', '.' or empty segments",
    ),
    Case(
        "destination-empty-segment",
        with_changes({"destinationPath": "data//x.json"}),
        "spec.destinationPath",
        "must not contain '..', '.' or empty segments",
    ),
    Case(
        "destination-backslash",
        with_changes({"destinationPath": "data\\x.json"}),
        "spec.destinationPath",
        "must not contain backslashes or NUL characters",
    ),
    Case(
        "destination-nul",
        with_changes({"destinationPath": "data\x00.json"}),
        "spec.destinationPath",
        "must not contain backslashes or NUL characters",
    ),
    Case(
        "destination-empty",
        with_changes({"destinationPath": ""}),
        "spec.destinationPath",
        "must not be empty",
    ),
    Case(
        "destination-directory",
        with_changes({"destinationPath": "data/"}),
        "spec.destinationPath",
        "must name a file, not a directory (no trailing '/')",
    ),
    Case(
        "max-retries-above",
        with_changes({"maxRetries": 11}),
        "spec.maxRetries",
        "must be between 0 and 10, got 11",
    ),
    Case(
        "max-retries-negative",
        with_changes({"maxRetries": -1}),
        "spec.maxRetries",
        "must be between 0 and 10, got -1",
    ),
    Case(
        "max-retries-string",
        with_changes({"maxRetries": "3"}),
        "spec.maxRetries",
        "must be a whole number, not a string",
    ),
    Case(
        "max-retries-bool",
        with_changes({"maxRetries": True}),
        "spec.maxRetries",
        "must be a whole number, not a boolean",
    ),
    Case("generator-missing", with_changes({"generator": DELETE}), "spec.generator", "is required"),
    Case(
        "generator-type-unknown",
        with_changes({"generator.type": "ftp"}),
        "spec.generator.type",
        "unknown generator type 'ftp' (supported: http, s3)",
    ),
    Case(
        "generator-type-missing",
        with_changes({"generator.type": DELETE}),
        "spec.generator.type",
        "is required",
    ),
    Case(
        "http-block-missing",
        with_changes({"generator.http": DELETE}),
        "spec.generator.http",
        "is required when type is http",
    ),
    Case(
        "s3-block-missing",
        with_changes({"generator": {"type": "s3"}}),
        "spec.generator.s3",
        "is required when type is s3",
    ),
    Case(
        "s3-block-with-type-http",
        with_changes({"generator.s3": {"bucket": "b", "key": "k"}}),
        "spec.generator.s3",
        "is only allowed when type is s3",
    ),
    Case(
        "url-missing",
        with_changes({"generator.http.url": DELETE}),
        "spec.generator.http.url",
        "is required",
    ),
    Case(
        "url-scheme",
        with_changes({"generator.http.url": "ftp://files.example.com/x"}),
        "spec.generator.http.url",
        "scheme must be http or https, got 'ftp'",
    ),
    Case(
        "url-no-scheme",
        with_changes({"generator.http.url": "api.example.com/flags"}),
        "spec.generator.http.url",
        "scheme must be http or https, got 'none'",
    ),
    Case(
        "url-no-host",
        with_changes({"generator.http.url": "https:///flags"}),
        "spec.generator.http.url",
        "must name a host, as in https://api.example.com/path",
    ),
    Case(
        "method-unknown",
        with_changes({"generator.http.method": "FETCH"}),
        "spec.generator.http.method",
        "must be one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'",
    ),
    Case(
        "secret-ref-without-name",
        with_changes({"generator.http.headersSecretRef": {}}),
        "spec.generator.http.headersSecretRef.name",
        "is required",
    ),
    Case(
        "secret-ref-with-namespace",
        with_changes({"generator.http.proxySecretRef": {"name": "p", "namespace": "other"}}),
        "spec.generator.http.proxySecretRef.namespace",
        "not allowed: the Secret must be in the source's namespace",
        crd=False,
    ),
    Case(
        "ca-bundle-key-invalid",
        with_changes({"generator.http.caBundleSecretRef": {"name": "ca", "key": "ca crt"}}),
        "spec.generator.http.caBundleSecretRef.key",
        "'ca crt' is not a valid Secret key (letters, digits, '-._')",
    ),
    Case(
        "insecure-skip-verify-string",
        with_changes({"generator.http.insecureSkipVerify": "true"}),
        "spec.generator.http.insecureSkipVerify",
        "must be true or false, not a string",
    ),
    Case(
        "s3-bucket-missing",
        with_changes({"generator": {"type": "s3", "s3": {"key": "a.json"}}}),
        "spec.generator.s3.bucket",
        "is required",
    ),
    Case(
        "s3-key-missing",
        with_changes({"generator": {"type": "s3", "s3": {"bucket": "exports"}}}),
        "spec.generator.s3.key",
        "is required",
    ),
    Case(
        "s3-endpoint-without-scheme",
        with_changes(
            {
                "generator": {
                    "type": "s3",
                    "s3": {"bucket": "b", "key": "k", "endpoint": "minio:9000"},
                }
            }
        ),
        "spec.generator.s3.endpoint",
        "must be an http or https URL, as in https://minio:9000",
    ),
    Case(
        "hook-name-missing",
        with_changes({"hooks.postRequest": [{"command": "jq"}]}),
        f"{HOOK0}.name",
        "is required",
    ),
    Case(
        "hook-name-invalid",
        with_changes({"hooks.postRequest": [hook(name="To_JSON")]}),
        f"{HOOK0}.name",
        "'To_JSON' must be at most 63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit",
    ),
    Case(
        "hook-name-duplicate",
        with_changes({"hooks.postRequest": [hook(), hook()]}),
        "spec.hooks.postRequest[1].name",
        "duplicate hook name 'to-json' in spec.hooks.postRequest",
    ),
    Case(
        "hook-command-missing",
        with_changes({"hooks.preRequest": [{"name": "sign"}]}),
        "spec.hooks.preRequest[0].command",
        "is required",
    ),
    Case(
        "hook-command-path",
        with_changes({"hooks.postRequest": [hook(command="/usr/bin/jq")]}),
        f"{HOOK0}.command",
        "'/usr/bin/jq' must be the name of a whitelisted command, not a path",
    ),
    Case(
        "hook-args-not-strings",
        with_changes({"hooks.postRequest": [hook(args=["--indent", 2])]}),
        f"{HOOK0}.args",
        "must be a list of strings (quote numbers and booleans)",
    ),
    Case(
        "hook-timeout-unparseable",
        with_changes({"hooks.postRequest": [hook(timeout="soon")]}),
        f"{HOOK0}.timeout",
        f"'soon' {NOT_A_DURATION}",
    ),
    Case(
        "hook-timeout-zero",
        with_changes({"hooks.postRequest": [hook(timeout="0s")]}),
        f"{HOOK0}.timeout",
        "must be greater than 0",
    ),
    Case(
        "hook-retry-policy",
        with_changes({"hooks.postRequest": [hook(retryPolicy="always")]}),
        f"{HOOK0}.retryPolicy",
        "must be one of ignore, retry, fail, got 'always'",
    ),
    Case(
        "hook-env-name-invalid",
        with_changes({"hooks.postRequest": [hook(env=[{"name": "1MODE", "value": "x"}])]}),
        f"{HOOK0}.env[0].name",
        "'1MODE' is not a valid environment variable name",
    ),
    Case(
        "hook-env-name-duplicate",
        with_changes(
            {"hooks.postRequest": [hook(env=[{"name": "MODE"}, {"name": "MODE", "value": "b"}])]}
        ),
        f"{HOOK0}.env[1].name",
        "duplicate variable 'MODE'",
    ),
    Case(
        "hook-unknown-field",
        with_changes({"hooks.postRequest": [hook(cmd="jq")]}),
        f"{HOOK0}.cmd",
        "unknown field",
        crd=False,
    ),
    Case(
        "hooks-not-a-list",
        with_changes({"hooks.postRequest": hook()}),
        "spec.hooks.postRequest",
        "must be a list of hooks, not an object",
    ),
    Case(
        "too-many-hooks",
        with_changes({"hooks.preRequest": [hook(name=f"h{i}") for i in range(33)]}),
        "spec.hooks.preRequest",
        "must have at most 32 hooks, got 33",
    ),
    Case(
        "cel-blank",
        with_changes({"transform": {"cel": "  "}}),
        "spec.transform.cel",
        "must not be empty",
    ),
    Case(
        "cel-too-long",
        with_changes({"transform": {"cel": "1 + " * 4096 + "1"}}),
        "spec.transform.cel",
        "must be at most 16384 characters long",
    ),
    Case(
        "cel-missing",
        with_changes({"transform": {}}),
        "spec.transform.cel",
        "is required",
    ),
    Case(
        "unknown-spec-field",
        with_changes({"intervall": "5m"}),
        "spec.intervall",
        "unknown field",
        crd=False,
    ),
    Case(
        "unknown-http-field",
        with_changes({"generator.http.headers": {"Authorization": "x"}}),
        "spec.generator.http.headers",
        "unknown field",
        crd=False,
    ),
    Case("spec-not-an-object", ["interval", "5m"], "spec", "must be an object, not a list"),
]
