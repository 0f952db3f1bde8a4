"""Generator types by name: register, create, and the start-up consistency check.

The CRD's `spec.generator.type` enum and this registry must agree (seed
requirement 2.5): the controller calls `check_types` with the enum of the
installed CRD at start-up and refuses to run on a mismatch. `create` always
wraps the generator in `InstrumentedGenerator`, so metrics are never a
per-generator chore. A `GeneratorRegistry` can be built empty (tests, tools);
the module-level functions use the default one, which holds the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from generators import reasons
from generators.base import FetchError, GeneratorSettings, SourceGenerator
from generators.builtin import register_builtins
from generators.metrics import InstrumentedGenerator

GeneratorFactory = Callable[[GeneratorSettings], SourceGenerator]


class GeneratorRegistry:
    """A mapping from `spec.generator.type` to a factory."""

    def __init__(self) -> None:
        self._factories: dict[str, GeneratorFactory] = {}

    def register(self, type_name: str, factory: GeneratorFactory) -> None:
        if type_name in self._factories:
            raise ValueError(f"generator type {type_name!r} is already registered")
        self._factories[type_name] = factory

    def create(self, type_name: str, settings: GeneratorSettings) -> SourceGenerator:
        """A new, instrumented generator; callers keep one per type and `aclose()` it."""
        factory = self._factories.get(type_name)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise FetchError(
                f"generator type {type_name!r} is not supported (supported: {known})",
                reason=reasons.UNSUPPORTED_GENERATOR,
                transient=False,
            )
        return InstrumentedGenerator(factory(settings))

    def supported_types(self) -> frozenset[str]:
        return frozenset(self._factories)

    def check_types(self, crd_types: Iterable[str]) -> list[str]:
        """Problems, for humans, between the CRD's allowed types and the implementations."""
        allowed = frozenset(crd_types)
        implemented = self.supported_types()
        missing = [
            f"the CRD allows generator type {name!r} but this controller has no implementation"
            for name in sorted(allowed - implemented)
        ]
        hidden = [
            f"generator type {name!r} is implemented but the installed CRD does not allow it"
            for name in sorted(implemented - allowed)
        ]
        return missing + hidden


default_registry = GeneratorRegistry()
register_builtins(default_registry)

register = default_registry.register
create = default_registry.create
supported_types = default_registry.supported_types
check_types = default_registry.check_types
