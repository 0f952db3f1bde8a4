"""The wire form of the API models: camelCase keys, None left out, strict scalar types.

One cattrs converter for every model, built from the attrs classes themselves
(a hook factory, not one hook per class), so a new field needs no converter
change. Scalars are structured strictly — cattrs would turn `5` into `"5"`
and `"false"` into True — because a silently coerced value is a wrong
object. `None` is left out on unstructure so that optional fields absent in
the input stay absent in the output; empty lists are kept, because `[]` in a
patch means "clear it". A model field named `extra` collects unknown keys
(used by ObjectMeta to keep managedFields, generateName, … verbatim).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

T = TypeVar("T")

EXTRA = "extra"


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def wire_fields(cls: type) -> dict[str, str]:
    """Attribute name → wire key, for every wire field of an attrs class (not `extra`)."""
    return {
        field.name: field.metadata.get("wire", camel(field.name))
        for field in attrs.fields(cls)
        if field.name != EXTRA
    }


def _strict(kind: type[T]) -> Callable[[Any, type], T]:
    def structure(value: Any, _: type) -> T:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(bool, _strict(bool))

    def overrides(cls: type) -> dict[str, Any]:
        renamed: dict[str, Any] = {
            name: override(rename=wire) for name, wire in wire_fields(cls).items()
        }
        if any(field.name == EXTRA for field in attrs.fields(cls)):
            renamed[EXTRA] = override(omit=True)
        return renamed

    def structure_factory(cls: type) -> Callable[[Any, type], Any]:
        build: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(
            cls, converter, **overrides(cls)
        )
        known = set(wire_fields(cls).values())
        keeps_extra = EXTRA in attrs.fields_dict(cls)

        def structure(data: Any, _: type) -> Any:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            obj = build(data, cls)
            if keeps_extra:
                extra = {k: v for k, v in data.items() if k not in known}
                obj = attrs.evolve(obj, **{EXTRA: extra})
            return obj

        return structure

    def unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        flatten: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, converter, **overrides(cls)
        )
        keeps_extra = EXTRA in attrs.fields_dict(cls)

        def unstructure(obj: Any) -> dict[str, Any]:
            out = {k: v for k, v in flatten(obj).items() if v is not None}
            return {**getattr(obj, EXTRA), **out} if keeps_extra else out

        return unstructure

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return converter


CONVERTER = _make_converter()


def to_wire(obj: Any) -> dict[str, Any]:
    """The JSON-ready wire form of a model (camelCase keys, None omitted)."""
    wire: dict[str, Any] = CONVERTER.unstructure(obj)
    return wire


def from_wire(cls: type[T], data: Any) -> T:
    """A model from its wire form; raises `cattrs.BaseValidationError` on a wrong shape.

    No validation beyond types: use `parse_external_source` for ExternalSources.
    """
    return CONVERTER.structure(data, cls)
