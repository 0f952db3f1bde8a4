"""`x-kubernetes-validations` (CEL) rules of a CRD, evaluated the way the API server does.

Our CRD states its cross-field rules (interval >= 1m, http block iff type http,
unique hook names, safe destinationPath) only as CEL, so an emulator without
CEL would accept specs a real cluster refuses and the controller's "the CRD
rule was bypassed" defences could not be told apart from normal operation.

Rules are compiled once per CRD with cel-python (`celpy`, already used by the
hooks room) plus the subset of Kubernetes' CEL "strings" extension library
that CRD rules use (`split`, `join`, `lowerAscii`, ...). `self` is the value at
the schema node carrying the rule, `oldSelf` the stored value at the same path
on updates (transition rules are skipped on create, as the server does; rules
inside list items are evaluated without `oldSelf`). A failing rule becomes a
422 cause on the node's path (or the rule's `fieldPath`), with `message`, a
`messageExpression` result or "failed rule: <rule>" as the server writes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

if TYPE_CHECKING:
    from tests.harness.schemas import Cause

Obj = dict[str, Any]
_ENV = celpy.Environment()


def _split(value: Any, sep: Any, limit: Any = None) -> celtypes.ListType:
    parts = str(value).split(str(sep)) if limit is None else str(value).split(str(sep), int(limit))
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(value: Any, sep: Any = "") -> celtypes.StringType:
    return celtypes.StringType(str(sep).join(str(v) for v in value))


def _replace(value: Any, old: Any, new: Any) -> celtypes.StringType:
    return celtypes.StringType(str(value).replace(str(old), str(new)))


def _substring(value: Any, start: Any, end: Any = None) -> celtypes.StringType:
    text = str(value)
    return celtypes.StringType(text[int(start) :] if end is None else text[int(start) : int(end)])


# The Kubernetes "strings" extension functions (a subset), called as methods: `self.split('/')`.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "split": _split,
    "join": _join,
    "replace": _replace,
    "substring": _substring,
    "lowerAscii": lambda v: celtypes.StringType(str(v).lower()),
    "upperAscii": lambda v: celtypes.StringType(str(v).upper()),
    "trim": lambda v: celtypes.StringType(str(v).strip()),
    "indexOf": lambda v, s: celtypes.IntType(str(v).find(str(s))),
    "lastIndexOf": lambda v, s: celtypes.IntType(str(v).rfind(str(s))),
    "charAt": lambda v, i: celtypes.StringType(str(v)[int(i) : int(i) + 1]),
}


def _program(expression: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(expression), functions=FUNCTIONS)


@attrs.define
class CelRule:
    """One `x-kubernetes-validations` entry bound to the schema path that carries it."""

    path: tuple[str, ...]  # property names from the root; "*" = every list item / map value
    rule: str
    program: celpy.Runner
    message: str | None = None
    message_program: celpy.Runner | None = None
    field_path: str | None = None
    reason: str = "FieldValueInvalid"

    @property
    def transition(self) -> bool:
        return "oldSelf" in self.rule

    def check(self, obj: Obj, *, old: Obj | None) -> Iterator[Cause]:
        from tests.harness.schemas import Cause, field_path  # noqa: PLC0415 (import cycle)

        for where, value, old_value in _values(obj, old, self.path, []):
            if self.transition and old_value is _MISSING:
                continue
            activation = {"self": json_to_cel(value)}
            if self.transition:
                activation["oldSelf"] = json_to_cel(old_value)
            result: object
            try:
                result = self.program.evaluate(activation)
            except CELEvalError as exc:
                result = exc
            if isinstance(result, celtypes.BoolType) and bool(result):
                continue
            field = field_path(where) + (self.field_path or "")
            yield Cause(field, self.reason, self._message(activation, value, result))

    def _message(self, activation: Obj, value: Any, result: Any) -> str:
        shown = (
            '"object"'
            if isinstance(value, dict)
            else '"array"'
            if isinstance(value, list)
            else value
        )
        if isinstance(result, CELEvalError):
            return f"Invalid value: {shown}: rule evaluation error: {result.args[0]}"
        text = self.message or f"failed rule: {self.rule}"
        if self.message_program is not None:
            with contextlib.suppress(CELEvalError):
                text = str(self.message_program.evaluate(activation))
        return f"Invalid value: {shown}: {text}"


class _Missing:
    pass


_MISSING: Any = _Missing()


def _values(
    value: Any, old: Any, path: tuple[str, ...], where: list[Any]
) -> Iterator[tuple[list[Any], Any, Any]]:
    """Every value (with its path and old counterpart) the rule at `path` applies to."""
    if not path:
        yield where, value, old
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _values(item, _MISSING, rest, [*where, i])
        elif isinstance(value, dict):
            for key, item in value.items():
                prev = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                yield from _values(item, prev, rest, [*where, key])
    elif isinstance(value, dict) and head in value:
        prev = old.get(head, _MISSING) if isinstance(old, dict) else _MISSING
        yield from _values(value[head], prev, rest, [*where, head])


def compile_rules(schema: Obj, path: tuple[str, ...] = ()) -> list[CelRule]:
    """Collect and compile every rule of a structural schema (raises on a syntax error)."""
    rules: list[CelRule] = []
    for entry in schema.get("x-kubernetes-validations", []):
        message_expr = entry.get("messageExpression")
        rules.append(
            CelRule(
                path=path,
                rule=entry["rule"],
                program=_program(entry["rule"]),
                message=entry.get("message"),
                message_program=_program(message_expr) if message_expr else None,
                field_path=entry.get("fieldPath"),
                reason=entry.get("reason", "FieldValueInvalid"),
            )
        )
    for key, sub in schema.get("properties", {}).items():
        rules.extend(compile_rules(sub, (*path, key)))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            rules.extend(compile_rules(schema[key], (*path, "*")))
    return rules
