"""Every check of an ExternalSource spec, returning all problems at once.

The CRD enforces most of these with its schema and CEL rules, but an API
server may run without them (or a user may apply with validation off), so the
controller repeats every check that matters and reports a violation as
`Stalled=True` with a precise message instead of crashing. The same function
backs `externalsource validate`, so offline validation and the controller
never disagree. It works on the raw dict: a wrong type or an unknown field is
a problem to report, not an exception. Known field names, enums and limits
come from the models and the CRD's numbers, so the three cannot drift apart.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from controller.api import models, names
from controller.api.durations import SPEC_DURATION_PATTERN, parse_duration
from controller.api.wire import to_wire, wire_fields

MIN_INTERVAL = 60.0
MIN_MAX_RETRIES, MAX_MAX_RETRIES = 0, 10
MAX_DURATION_LENGTH = 32
MAX_DESTINATION_PATH_LENGTH = 512
MAX_URL_LENGTH = 2048
MAX_HOOKS = 32
MAX_HOOK_NAME_LENGTH = 63
#: compile time grows with the expression (1 MB took 18 s); transforms are a few lines
MAX_CEL_LENGTH = 16384

HOOK_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
COMMAND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern for key names

_SPEC_DURATION = re.compile(SPEC_DURATION_PATTERN)
_HOOK_NAME = re.compile(HOOK_NAME_PATTERN)
_COMMAND = re.compile(COMMAND_PATTERN)
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)


@attrs.frozen
class Problem:
    """One thing wrong with a manifest: the field's path and what a user should change."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(
        self, value: Any, path: str, *, model: type | None = None, required: bool = False
    ) -> Mapping[str, Any]:
        if value is None:
            if required:
                self.add(path, "is required")
            return {}
        if not isinstance(value, Mapping):
            self.add(path, f"must be an object, not {_kind(value)}")
            return {}
        if model is not None:
            for extra in sorted(set(value) - set(wire_fields(model).values()), key=str):
                self.add(f"{path}.{extra}", "unknown field")
        return value

    def listing(self, value: Any, path: str, *, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list of {what}, not {_kind(value)}")
            return []
        return value

    def string(
        self, value: Any, path: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        if value is None:
            if required:
                self.add(path, "is required")
            return None
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {_kind(value)}")
            return None
        if required and not value.strip():
            self.add(path, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            self.add(path, f"must be at most {max_length} characters long")
            return None
        return value

    def enum(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        text = self.string(value, path)
        if text is not None and text not in choices:
            self.add(path, f"must be one of {', '.join(choices)}, got {text!r}")
            return None
        return text

    def boolean(self, value: Any, path: str) -> None:
        if value is not None and not isinstance(value, bool):
            self.add(path, f"must be true or false, not {_kind(value)}")

    def duration(self, value: Any, path: str, *, required: bool = False) -> float | None:
        text = self.string(value, path, required=required, max_length=MAX_DURATION_LENGTH)
        if text is None:
            return None
        if not _SPEC_DURATION.match(text):
            self.add(path, f"{text!r} is not a duration like 30s, 5m or 1h30m (units ms, s, m, h)")
            return None
        return parse_duration(text)

    def secret_ref(self, value: Any, path: str, *, with_key: bool = False) -> None:
        if value is None:
            return
        if isinstance(value, Mapping) and "namespace" in value:
            self.add(
                f"{path}.namespace", "not allowed: the Secret must be in the source's namespace"
            )
            value = {k: v for k, v in value.items() if k != "namespace"}
        model = models.SecretKeyReference if with_key else models.LocalObjectReference
        ref = self.mapping(value, path, model=model)
        if not isinstance(value, Mapping):
            return
        self.string(ref.get("name"), f"{path}.name", required=True)
        key = self.string(ref.get("key"), f"{path}.key") if with_key else None
        if key is not None and not _SECRET_KEY.match(key):
            self.add(f"{path}.key", f"{key!r} is not a valid Secret key (letters, digits, '-._')")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def validate_source(document: Any) -> list[Problem]:
    """All problems of a whole ExternalSource manifest: identity, name and spec."""
    c = _Checker()
    doc = c.mapping(document, "(document)", required=True)
    if not isinstance(document, Mapping):
        return c.problems
    if doc.get("apiVersion") != names.API_VERSION:
        c.add("apiVersion", f"must be {names.API_VERSION}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != names.KIND:
        c.add("kind", f"must be {names.KIND}, got {doc.get('kind')!r}")
    meta = c.mapping(doc.get("metadata"), "metadata", required=True)
    c.string(meta.get("name"), "metadata.name", required=True)
    c.string(meta.get("namespace"), "metadata.namespace")
    return [*c.problems, *validate_spec(doc.get("spec"))]


def validate_spec(spec: Any) -> list[Problem]:
    """All problems of an ExternalSource `spec` (raw dict or model); empty means valid."""
    if isinstance(spec, models.ExternalSourceSpec):
        spec = to_wire(spec)
    c = _Checker()
    if not isinstance(spec, Mapping):
        c.mapping(spec, "spec", required=True)
        return c.problems
    c.mapping(spec, "spec", model=models.ExternalSourceSpec)
    interval = c.duration(spec.get("interval"), "spec.interval", required=True)
    if interval is not None and interval < MIN_INTERVAL:
        c.add("spec.interval", f"must be at least 1m, got {spec['interval']}")
    timeout = c.duration(spec.get("timeout"), "spec.timeout")
    if timeout is not None and timeout <= 0:
        c.add("spec.timeout", "must be greater than 0")
    c.boolean(spec.get("suspend"), "spec.suspend")
    _destination(c, spec.get("destinationPath"))
    retries = spec.get("maxRetries")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)):
        c.add("spec.maxRetries", f"must be a whole number, not {_kind(retries)}")
    elif retries is not None and not MIN_MAX_RETRIES <= retries <= MAX_MAX_RETRIES:
        c.add(
            "spec.maxRetries",
            f"must be between {MIN_MAX_RETRIES} and {MAX_MAX_RETRIES}, got {retries}",
        )
    _generator(c, spec.get("generator"))
    hooks = c.mapping(spec.get("hooks"), "spec.hooks", model=models.HooksSpec)
    for phase in ("preRequest", "postRequest"):
        _hooks(c, hooks.get(phase), f"spec.hooks.{phase}")
    transform = c.mapping(spec.get("transform"), "spec.transform", model=models.TransformSpec)
    if isinstance(spec.get("transform"), Mapping):
        c.string(
            transform.get("cel"), "spec.transform.cel", required=True, max_length=MAX_CEL_LENGTH
        )
    return c.problems


def _destination(c: _Checker, value: Any) -> None:
    where = "spec.destinationPath"
    path = c.string(value, where, max_length=MAX_DESTINATION_PATH_LENGTH)
    if path is None:
        return
    if not path:
        c.add(where, "must not be empty")
    elif path.startswith("/"):
        c.add(where, "must be a relative path (no leading '/')")
    elif "\\" in path or "\x00" in path:
        c.add(where, "must not contain backslashes or NUL characters")
    elif path.endswith("/"):
        c.add(where, "must name a file, not a directory (no trailing '/')")
    elif any(part in ("..", ".", "") for part in path.split("/")):
        c.add(where, "must not contain '..', '.' or empty segments")


def _generator(c: _Checker, value: Any) -> None:
    gen = c.mapping(value, "spec.generator", required=True)
    if not isinstance(value, Mapping):
        return
    blocks = {"http": _http, "s3": _s3}
    known = set(wire_fields(models.GeneratorSpec).values())
    for extra in sorted(set(gen) - known, key=str):
        hint = "" if extra in blocks else " (a generator has type and one block named after it)"
        c.add(f"spec.generator.{extra}", f"unknown field{hint}")
    type_ = c.string(gen.get("type"), "spec.generator.type", required=True)
    if type_ is not None and type_ not in models.GENERATOR_TYPES:
        c.add(
            "spec.generator.type",
            f"unknown generator type {type_!r} (supported: {', '.join(models.GENERATOR_TYPES)})",
        )
    known_type = type_ in models.GENERATOR_TYPES
    for other in models.GENERATOR_TYPES:
        if known_type and other != type_ and gen.get(other) is not None:
            c.add(f"spec.generator.{other}", f"is only allowed when type is {other}")
    if type_ in blocks:
        if gen.get(type_) is None:
            c.add(f"spec.generator.{type_}", f"is required when type is {type_}")
            return
        check: Callable[[_Checker, Mapping[str, Any]], None] = blocks[type_]
        block = c.mapping(gen[type_], f"spec.generator.{type_}")
        if isinstance(gen[type_], Mapping):
            check(c, block)


def _http(c: _Checker, http: Mapping[str, Any]) -> None:
    where = "spec.generator.http"
    c.mapping(http, where, model=models.HttpGeneratorSpec)
    url = c.string(http.get("url"), f"{where}.url", required=True, max_length=MAX_URL_LENGTH)
    if url is not None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            c.add(f"{where}.url", f"scheme must be http or https, got {parsed.scheme or 'none'!r}")
        elif not parsed.hostname:
            c.add(f"{where}.url", "must name a host, as in https://api.example.com/path")
    c.enum(http.get("method"), f"{where}.method", models.HTTP_METHODS)
    c.string(http.get("body"), f"{where}.body")
    for ref in ("headersSecretRef", "certSecretRef", "proxySecretRef"):
        c.secret_ref(http.get(ref), f"{where}.{ref}")
    c.secret_ref(http.get("caBundleSecretRef"), f"{where}.caBundleSecretRef", with_key=True)
    c.boolean(http.get("insecureSkipVerify"), f"{where}.insecureSkipVerify")


def _s3(c: _Checker, s3: Mapping[str, Any]) -> None:
    where = "spec.generator.s3"
    c.mapping(s3, where, model=models.S3GeneratorSpec)
    c.string(s3.get("bucket"), f"{where}.bucket", required=True)
    c.string(s3.get("key"), f"{where}.key", required=True)
    endpoint = c.string(s3.get("endpoint"), f"{where}.endpoint")
    if endpoint is not None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            c.add(f"{where}.endpoint", "must be an http or https URL, as in https://minio:9000")
    c.string(s3.get("region"), f"{where}.region")
    c.secret_ref(s3.get("credentialsSecretRef"), f"{where}.credentialsSecretRef")
    c.secret_ref(s3.get("caBundleSecretRef"), f"{where}.caBundleSecretRef", with_key=True)
    c.boolean(s3.get("pathStyle"), f"{where}.pathStyle")
    c.boolean(s3.get("insecureSkipVerify"), f"{where}.insecureSkipVerify")


def _hooks(c: _Checker, value: Any, path: str) -> None:
    hooks = c.listing(value, path, what="hooks")
    if len(hooks) > MAX_HOOKS:
        c.add(path, f"must have at most {MAX_HOOKS} hooks, got {len(hooks)}")
    seen: set[str] = set()
    for i, raw in enumerate(hooks):
        where = f"{path}[{i}]"
        hook = c.mapping(raw, where, model=models.Hook, required=True)
        if not isinstance(raw, Mapping):
            continue
        name = c.string(hook.get("name"), f"{where}.name", required=True)
        if name is not None:
            if not _HOOK_NAME.match(name) or len(name) > MAX_HOOK_NAME_LENGTH:
                c.add(
                    f"{where}.name",
                    f"{name!r} must be at most {MAX_HOOK_NAME_LENGTH} lowercase letters, "
                    "digits and '-', starting and ending with a letter or digit",
                )
            if name in seen:
                c.add(f"{where}.name", f"duplicate hook name {name!r} in {path}")
            seen.add(name)
        command = c.string(hook.get("command"), f"{where}.command", required=True)
        if command is not None and not _COMMAND.match(command):
            c.add(
                f"{where}.command",
                f"{command!r} must be the name of a whitelisted command, not a path",
            )
        args = hook.get("args")
        if args is not None and (
            not isinstance(args, list) or not all(isinstance(a, str) for a in args)
        ):
            c.add(f"{where}.args", "must be a list of strings (quote numbers and booleans)")
        timeout = c.duration(hook.get("timeout"), f"{where}.timeout")
        if timeout is not None and timeout <= 0:
            c.add(f"{where}.timeout", "must be greater than 0")
        c.enum(hook.get("retryPolicy"), f"{where}.retryPolicy", models.RETRY_POLICIES)
        _env(c, hook.get("env"), f"{where}.env")


def _env(c: _Checker, value: Any, path: str) -> None:
    names: set[str] = set()
    for i, raw in enumerate(c.listing(value, path, what="{name, value} objects")):
        item = c.mapping(raw, f"{path}[{i}]", model=models.EnvVar, required=True)
        name = c.string(item.get("name"), f"{path}[{i}].name", required=True)
        if name is not None:
            if not _ENV_NAME.match(name):
                c.add(f"{path}[{i}].name", f"{name!r} is not a valid environment variable name")
            if name in names:
                c.add(f"{path}[{i}].name", f"duplicate variable {name!r}")
            names.add(name)
        c.string(item.get("value"), f"{path}[{i}].value")
