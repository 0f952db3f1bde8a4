"""What the API server does with a CRD's openAPIV3Schema on every write: prune, default, validate.

A real API server, for a custom resource, (1) prunes fields the structural
schema does not declare (and nulls of non-nullable fields), (2) applies
`default`s, (3) validates against the schema and the `x-kubernetes-validations`
CEL rules, and rejects with 422 `Invalid` listing one cause per field, e.g.
`{"field": "spec.interval", "reason": "FieldValueInvalid", ...}`. The
controller's tests depend on all three (a status field the schema lacks must
vanish, a defaulted spec must look defaulted, an invalid spec must be refused),
so the emulator does the same here.

The schema is OpenAPI v3.0, not JSON Schema: `nullable`, `x-kubernetes-*`
keys, boolean `exclusiveMinimum` (Draft 4 semantics) and `format` differ. It is
converted once per CRD (`to_json_schema`) and checked with jsonschema's Draft 4
validator and a date-time format checker (RFC 3339, as Kubernetes parses it).
Not emulated: validation ratcheting (1.30+: unchanged invalid fields pass),
`x-kubernetes-embedded-resource` metadata checks, int32/int64 range formats.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import attrs
import jsonschema

from tests.harness.cel import CelRule, compile_rules

Obj = dict[str, Any]
_ROOT_KEEP = frozenset({"apiVersion", "kind", "metadata"})
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@attrs.frozen
class Cause:
    """One entry of a 422 Status's `details.causes`, as the API server writes it."""

    field: str
    reason: str
    message: str

    def to_dict(self) -> Obj:
        return {"field": self.field, "reason": self.reason, "message": self.message}


def field_path(parts: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    """`["spec", "hooks", 0, "name"]` → `spec.hooks[0].name` (the API server's notation)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def to_json_schema(schema: Any) -> Any:
    """Translate an OpenAPI v3 structural schema node into a Draft 4 JSON Schema node."""
    if isinstance(schema, list):
        return [to_json_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: Obj = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in {"nullable", "default", "description"}:
            continue
        if key in {"properties", "patternProperties", "definitions"}:
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        else:
            out[key] = to_json_schema(value)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if schema.get("type") == "object" and "properties" in schema:
        # Unknown fields are pruned before validation, so they never reach the validator.
        out.setdefault("additionalProperties", True)
    return out


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    def date_time(value: object) -> bool:
        return not isinstance(value, str) or bool(_DATE_TIME.match(value))

    checker.checks("date-time")(date_time)
    return checker


_FORMATS = _format_checker()


def _preserves(schema: Obj) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune(value: Any, schema: Obj, *, root: bool = False) -> Any:
    """Drop fields the schema does not declare, and nulls of non-nullable fields (in place)."""
    if isinstance(value, dict):
        props: Obj = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in list(value):
            if root and key in _ROOT_KEEP:
                continue
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            if sub is None:
                if key not in props and not _preserves(schema) and extra is not True:
                    del value[key]
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]
                continue
            value[key] = prune(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def apply_defaults(value: Any, schema: Obj) -> Any:
    """Structural defaulting: set absent properties that declare a `default`, recursively."""
    if isinstance(value, dict):
        props: Obj = schema.get("properties", {})
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _bound(word: str, exclusive_key: str) -> Any:
    def text(value: Any, schema: Obj) -> str:
        return f"should be {word} than {'' if schema.get(exclusive_key) else 'or equal to '}{value}"

    return text


# kube-openapi's wording of schema violations (k8s.io/kube-openapi/pkg/validation/errors).
_RULE_TEXT: dict[str, Any] = {
    "pattern": lambda v, s: f"should match '{v}'",
    "format": lambda v, s: f"must be of type {v}",
    "minimum": _bound("greater", "exclusiveMinimum"),
    "maximum": _bound("less", "exclusiveMaximum"),
    "minLength": lambda v, s: f"should be at least {v} chars long",
    "maxLength": lambda v, s: f"should be at most {v} chars long",
    "minItems": lambda v, s: f"should have at least {v} items",
    "maxItems": lambda v, s: f"should have at most {v} items",
    "minProperties": lambda v, s: f"should have at least {v} properties",
    "maxProperties": lambda v, s: f"should have at most {v} properties",
}


def _cause_from_error(error: jsonschema.ValidationError) -> list[Cause]:
    path = list(error.absolute_path)
    shown = json.dumps(error.instance) if not isinstance(error.instance, dict | list) else None
    where = field_path(path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in (error.instance or {})]
        return [
            Cause(field_path([*path, m]), "FieldValueRequired", "Required value") for m in missing
        ]
    if error.validator == "enum":
        supported = ", ".join(json.dumps(v) for v in error.validator_value)
        return [
            Cause(
                where,
                "FieldValueNotSupported",
                f"Unsupported value: {shown}: supported values: {supported}",
            )
        ]
    if error.validator == "type":
        return [
            Cause(
                where,
                "FieldValueTypeInvalid",
                f'Invalid value: "{type(error.instance).__name__}": {where} in body must be of '
                f"type {error.validator_value}",
            )
        ]
    rule = _RULE_TEXT.get(str(error.validator), lambda v, s: error.message)(
        error.validator_value, error.schema
    )
    shown_value = shown if shown is not None else f'"{type(error.instance).__name__}"'
    return [
        Cause(where, "FieldValueInvalid", f"Invalid value: {shown_value}: {where} in body {rule}")
    ]


def _list_type_causes(value: Any, schema: Obj, path: list[Any]) -> Iterator[Cause]:
    """`x-kubernetes-list-type: map|set`: duplicate keys/items are refused like the server."""
    if isinstance(value, dict):
        props: Obj = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sch = props.get(key, extra if isinstance(extra, dict) else None)
            if sch is not None:
                yield from _list_type_causes(sub, sch, [*path, key])
    elif isinstance(value, list):
        items = schema.get("items")
        kind = schema.get("x-kubernetes-list-type")
        seen: list[Any] = []
        for i, item in enumerate(value):
            identity: Any = item
            if kind == "map" and isinstance(item, dict):
                identity = {k: item.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])}
            if kind in {"map", "set"}:
                if identity in seen:
                    yield Cause(
                        field_path([*path, i]),
                        "FieldValueDuplicate",
                        f"Duplicate value: {json.dumps(identity)}",
                    )
                seen.append(identity)
            if isinstance(items, dict):
                yield from _list_type_causes(item, items, [*path, i])


@attrs.define
class ResourceSchema:
    """One served version's schema, compiled once: prune → default → validate."""

    openapi: Obj
    validator: jsonschema.Draft4Validator
    rules: list[CelRule]

    @classmethod
    def from_openapi(cls, openapi: Obj) -> ResourceSchema:
        json_schema = to_json_schema(openapi)
        jsonschema.Draft4Validator.check_schema(json_schema)
        validator = jsonschema.Draft4Validator(json_schema, format_checker=_FORMATS)
        return cls(openapi=openapi, validator=validator, rules=compile_rules(openapi))

    def admit(self, obj: Obj) -> Obj:
        """What the server stores for a written object: pruned and defaulted (in place)."""
        prune(obj, self.openapi, root=True)
        apply_defaults(obj, self.openapi)
        return obj

    def causes(self, obj: Obj, *, old: Obj | None) -> list[Cause]:
        """Every schema violation of `obj` (old: the stored object, for transition rules)."""
        body = {k: v for k, v in obj.items() if k != "metadata"}
        found: list[Cause] = []
        for error in sorted(
            self.validator.iter_errors(body), key=lambda e: field_path(list(e.absolute_path))
        ):
            found.extend(_cause_from_error(error))
        found.extend(_list_type_causes(body, self.openapi, []))
        if not found:  # the server runs CEL rules only on a schema-valid object
            for rule in self.rules:
                found.extend(rule.check(body, old=old))
        return found
