"""Every check of an ExternalSource spec, returning all problems at once.

The CRD enforces most of these with its schema and CEL rules, but an API
server may run without them (or a user may apply with validation off), so the
controller repeats every check that matters and reports a violation as
`Stalled=True` with a precise message instead of crashing. The same function
backs `externalsource validate`, so offline validation and the controller
never disagree. It works on the raw dict: a wrong type is a problem to report,
not an exception.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from controller.api.durations import parse_duration

MIN_INTERVAL = 60.0
GENERATOR_TYPES = ("http", "s3")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETRY_POLICIES = ("ignore", "retry", "fail")
SPEC_FIELDS = frozenset(
    {
        "interval",
        "timeout",
        "suspend",
        "destinationPath",
        "maxRetries",
        "generator",
        "hooks",
        "transform",
    }
)
_HOOK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_COMMAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@attrs.frozen
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, value: Any, path: str, *, required: bool = False) -> Mapping[str, Any]:
        if value is None:
            if required:
                self.add(path, "is required")
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"must be an object, not {type(value).__name__}")
            return {}
        return value

    def string(self, value: Any, path: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.add(path, "is required")
            return None
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {type(value).__name__}")
            return None
        if required and not value:
            self.add(path, "must not be empty")
            return None
        return value

    def boolean(self, value: Any, path: str) -> None:
        if value is not None and not isinstance(value, bool):
            self.add(path, "must be true or false")

    def duration(self, value: Any, path: str, *, required: bool = False) -> float | None:
        text = self.string(value, path, required=required)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError:
            self.add(path, f"{text!r} is not a duration like 30s, 5m or 1h30m")
            return None

    def secret_ref(self, value: Any, path: str, *, with_key: bool = False) -> None:
        ref = self.mapping(value, path)
        if value is None:
            return
        self.string(ref.get("name"), f"{path}.name", required=True)
        key = self.string(ref.get("key"), f"{path}.key") if with_key else None
        if key is not None and not _SECRET_KEY.match(key):
            self.add(f"{path}.key", f"{key!r} is not a valid Secret key")
        allowed = {"name", "key"} if with_key else {"name"}
        for extra in sorted(set(ref) - allowed):
            hint = " (Secrets must be in the source's namespace)" if extra == "namespace" else ""
            self.add(f"{path}.{extra}", f"unknown field{hint}")


def validate_spec(spec: Any) -> list[Problem]:
    """All problems of an ExternalSource `spec` (an empty list means valid)."""
    c = _Checker()
    spec = c.mapping(spec, "spec", required=True)
    if not spec:
        return c.problems
    for extra in sorted(set(spec) - SPEC_FIELDS):
        c.add(f"spec.{extra}", "unknown field")
    interval = c.duration(spec.get("interval"), "spec.interval", required=True)
    if interval is not None and interval < MIN_INTERVAL:
        c.add("spec.interval", f"must be at least 1m, got {spec['interval']}")
    timeout = c.duration(spec.get("timeout"), "spec.timeout")
    if timeout is not None and timeout <= 0:
        c.add("spec.timeout", "must be positive")
    c.boolean(spec.get("suspend"), "spec.suspend")
    _destination(c, spec.get("destinationPath"))
    retries = spec.get("maxRetries")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)):
        c.add("spec.maxRetries", "must be an integer")
    elif retries is not None and not 0 <= retries <= 10:
        c.add("spec.maxRetries", f"must be between 0 and 10, got {retries}")
    _generator(c, spec.get("generator"))
    hooks = c.mapping(spec.get("hooks"), "spec.hooks")
    for extra in sorted(set(hooks) - {"preRequest", "postRequest"}):
        c.add(f"spec.hooks.{extra}", "unknown field (use preRequest or postRequest)")
    for phase in ("preRequest", "postRequest"):
        _hooks(c, hooks.get(phase), f"spec.hooks.{phase}")
    transform = c.mapping(spec.get("transform"), "spec.transform")
    if transform:
        c.string(transform.get("cel"), "spec.transform.cel", required=True)
    return c.problems


def _destination(c: _Checker, value: Any) -> None:
    path = c.string(value, "spec.destinationPath")
    if path is None:
        return
    where = "spec.destinationPath"
    if not path:
        c.add(where, "must not be empty")
    elif path.startswith("/"):
        c.add(where, "must be a relative path (no leading '/')")
    elif "\\" in path or "\x00" in path:
        c.add(where, "must not contain backslashes or NUL")
    elif path.endswith("/"):
        c.add(where, "must name a file, not a directory (no trailing '/')")
    elif any(part in ("..", ".", "") for part in path.split("/")):
        c.add(where, "must not contain '..', '.' or empty segments")


def _generator(c: _Checker, value: Any) -> None:
    gen = c.mapping(value, "spec.generator", required=True)
    if not gen:
        return
    type_ = c.string(gen.get("type"), "spec.generator.type", required=True)
    if type_ is not None and type_ not in GENERATOR_TYPES:
        c.add(
            "spec.generator.type",
            f"unknown generator type {type_!r} (supported: {', '.join(GENERATOR_TYPES)})",
        )
    for other in GENERATOR_TYPES:
        if other != type_ and other in gen:
            c.add(f"spec.generator.{other}", f"is only allowed when type is {other}")
    for extra in sorted(set(gen) - {"type", *GENERATOR_TYPES}):
        c.add(f"spec.generator.{extra}", "unknown field")
    blocks: dict[str, Callable[[_Checker, Mapping[str, Any]], None]] = {"http": _http, "s3": _s3}
    if type_ in blocks:
        block = c.mapping(gen.get(type_), f"spec.generator.{type_}")
        if type_ not in gen:
            c.add(f"spec.generator.{type_}", f"is required when type is {type_}")
        elif block:
            blocks[type_](c, block)


def _http(c: _Checker, http: Mapping[str, Any]) -> None:
    url = c.string(http.get("url"), "spec.generator.http.url", required=True)
    if url is not None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            c.add(
                "spec.generator.http.url",
                f"scheme must be http or https, got {parsed.scheme or 'none'!r}",
            )
        elif not parsed.hostname:
            c.add("spec.generator.http.url", "must name a host")
    method = c.string(http.get("method"), "spec.generator.http.method")
    if method is not None and method not in METHODS:
        c.add("spec.generator.http.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    c.string(http.get("body"), "spec.generator.http.body")
    for ref in ("headersSecretRef", "certSecretRef", "proxySecretRef"):
        c.secret_ref(http.get(ref), f"spec.generator.http.{ref}")
    c.secret_ref(
        http.get("caBundleSecretRef"), "spec.generator.http.caBundleSecretRef", with_key=True
    )
    c.boolean(http.get("insecureSkipVerify"), "spec.generator.http.insecureSkipVerify")
    known = {
        "url",
        "method",
        "body",
        "headersSecretRef",
        "caBundleSecretRef",
        "certSecretRef",
        "proxySecretRef",
        "insecureSkipVerify",
    }
    for extra in sorted(set(http) - known):
        c.add(f"spec.generator.http.{extra}", "unknown field")


def _s3(c: _Checker, s3: Mapping[str, Any]) -> None:
    c.string(s3.get("bucket"), "spec.generator.s3.bucket", required=True)
    c.string(s3.get("key"), "spec.generator.s3.key", required=True)
    endpoint = c.string(s3.get("endpoint"), "spec.generator.s3.endpoint")
    if endpoint is not None and urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
        c.add("spec.generator.s3.endpoint", "must be an http or https URL")
    c.string(s3.get("region"), "spec.generator.s3.region")
    c.secret_ref(s3.get("credentialsSecretRef"), "spec.generator.s3.credentialsSecretRef")
    c.secret_ref(s3.get("caBundleSecretRef"), "spec.generator.s3.caBundleSecretRef", with_key=True)
    c.boolean(s3.get("pathStyle"), "spec.generator.s3.pathStyle")
    c.boolean(s3.get("insecureSkipVerify"), "spec.generator.s3.insecureSkipVerify")


def _hooks(c: _Checker, value: Any, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        c.add(path, "must be a list of hooks")
        return
    seen: set[str] = set()
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        hook = c.mapping(raw, where, required=True)
        if not hook:
            continue
        name = c.string(hook.get("name"), f"{where}.name", required=True)
        if name is not None:
            if not _HOOK_NAME.match(name) or len(name) > 63:
                c.add(f"{where}.name", f"{name!r} must be lowercase letters, digits and '-'")
            if name in seen:
                c.add(f"{where}.name", f"duplicate hook name {name!r}")
            seen.add(name)
        command = c.string(hook.get("command"), f"{where}.command", required=True)
        if command is not None and not _COMMAND.match(command):
            c.add(f"{where}.command", f"{command!r} must be a whitelist command name, not a path")
        args = hook.get("args")
        if args is not None and (
            not isinstance(args, list) or not all(isinstance(a, str) for a in args)
        ):
            c.add(f"{where}.args", "must be a list of strings")
        timeout = c.duration(hook.get("timeout"), f"{where}.timeout")
        if timeout is not None and timeout <= 0:
            c.add(f"{where}.timeout", "must be positive")
        policy = c.string(hook.get("retryPolicy"), f"{where}.retryPolicy")
        if policy is not None and policy not in RETRY_POLICIES:
            c.add(
                f"{where}.retryPolicy",
                f"must be one of {', '.join(RETRY_POLICIES)}, got {policy!r}",
            )
        _env(c, hook.get("env"), f"{where}.env")


def _env(c: _Checker, value: Any, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        c.add(path, "must be a list of {name, value}")
        return
    names: set[str] = set()
    for i, raw in enumerate(value):
        item = c.mapping(raw, f"{path}[{i}]", required=True)
        name = c.string(item.get("name"), f"{path}[{i}].name", required=True)
        if name is not None:
            if not _ENV_NAME.match(name):
                c.add(f"{path}[{i}].name", f"{name!r} is not a valid environment variable name")
            if name in names:
                c.add(f"{path}[{i}].name", f"duplicate variable {name!r}")
            names.add(name)
        c.string(item.get("value"), f"{path}[{i}].value")
