"""The generators shipped with the controller: one registration line each.

Adding a generator type = its module + one line below + the CRD enum value +
its request type in `requests.py` (see docs/generators.md, "Adding a
generator"). `registry.py` calls `register_builtins` on its default registry
at import, so `from generators import registry` is all a caller needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from generators.http import HttpGenerator
from generators.s3 import S3Generator

if TYPE_CHECKING:
    from generators.registry import GeneratorRegistry


def register_builtins(registry: GeneratorRegistry) -> None:
    registry.register("http", HttpGenerator)
    registry.register("s3", S3Generator)
