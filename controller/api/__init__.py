"""The ExternalSource API: models, wire form, validation, names, durations and the CRD.

Everything a user can write or read in an ExternalSource is defined here once,
so the controller, `externalsource validate` and the CRD agree. The names
below are the room's public surface; the submodules say why each is shaped
as it is.
"""

from controller.api.models import (
    Artifact,
    Condition,
    ExternalSource,
    ExternalSourceSpec,
    ExternalSourceStatus,
    GeneratorSpec,
    Hook,
    HttpGeneratorSpec,
    ObjectMeta,
    S3GeneratorSpec,
)
from controller.api.parsing import SpecError, parse_external_source
from controller.api.validation import Problem, validate_source, validate_spec
from controller.api.wire import from_wire, to_wire

__all__ = [
    "Artifact",
    "Condition",
    "ExternalSource",
    "ExternalSourceSpec",
    "ExternalSourceStatus",
    "GeneratorSpec",
    "Hook",
    "HttpGeneratorSpec",
    "ObjectMeta",
    "Problem",
    "S3GeneratorSpec",
    "SpecError",
    "from_wire",
    "parse_external_source",
    "to_wire",
    "validate_source",
    "validate_spec",
]
