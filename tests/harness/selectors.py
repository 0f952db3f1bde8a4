"""Label and field selectors of LIST and WATCH requests, parsed and matched like the API server.

The controller watches its children by label and finds objects by name with
`fieldSelector=metadata.name=...` (kr8s's `get()` does that), so the emulator
must filter, not return everything as kmock does. Label selector syntax:
`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-joined
(AND). Field selectors: `metadata.name` and `metadata.namespace` with `=`,
`==`, `!=`; any other field is refused with 400 like a real server refuses a
field label the resource does not support.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_SET_EXPR = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
FIELDS = frozenset({"metadata.name", "metadata.namespace"})


class SelectorError(ValueError):
    """An unparsable selector or an unsupported field label (→ 400 BadRequest)."""


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _label_requirement(text: str) -> Predicate:
    if m := _EQ_EXPR.match(text):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _SET_EXPR.match(text):
        negate, key, op, values_text = m.groups()
        if op and negate:
            raise SelectorError(f"unable to parse requirement: {text!r}")
        if op:
            values = {v.strip() for v in values_text.split(",") if v.strip()}
            if op == "in":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {text!r}")


def _field_requirement(text: str) -> Predicate:
    m = _EQ_EXPR.match(text)
    if m is None:
        raise SelectorError(f"invalid field selector: {text!r}")
    field, op, value = m.groups()
    if field not in FIELDS:
        raise SelectorError(f'field label not supported: "{field}"')
    key = field.split(".", 1)[1]

    def pick(obj: Obj) -> Any:
        return (obj.get("metadata") or {}).get(key, "")

    if op == "!=":
        return lambda obj: pick(obj) != value
    return lambda obj: pick(obj) == value


@attrs.frozen
class Selector:
    """The conjunction of a label selector, a field selector, and a name/namespace from the URL."""

    labels: tuple[Predicate, ...] = ()
    fields: tuple[Predicate, ...] = ()
    namespace: str | None = None
    name: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        label_selector: str = "",
        field_selector: str = "",
        namespace: str | None = None,
        name: str | None = None,
    ) -> Selector:
        return cls(
            labels=tuple(_label_requirement(r) for r in _split_requirements(label_selector)),
            fields=tuple(_field_requirement(r) for r in _split_requirements(field_selector)),
            namespace=namespace,
            name=name,
        )

    def __call__(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        labels = meta.get("labels") or {}
        return all(p(labels) for p in self.labels) and all(p(obj) for p in self.fields)
