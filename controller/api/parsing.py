"""Raw ExternalSource dict → validated model, or one error listing every problem.

Validation runs first, so a spec the controller accepts is exactly one the
model can hold, and a bad spec surfaces as `SpecError` (reason `InvalidSpec`,
not transient: retrying cannot help until the spec changes) with all its
problems — never as a cattrs traceback. Missing optional fields (and
`field: null`, which the API server prunes) take the CRD's defaults through
the models' defaults, so an object read from an API server that ran without
the CRD's defaulting means the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs

from controller.api import reasons
from controller.api.models import ExternalSource, ExternalSourceSpec
from controller.api.validation import Problem, validate_spec
from controller.api.wire import from_wire


class SpecError(Exception):
    """An ExternalSource that cannot be used as written; `problems` has every finding."""

    reason = reasons.INVALID_SPEC
    transient = False
    retry_after: float | None = None

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.message = "; ".join(str(p) for p in problems)
        super().__init__(self.message)


def parse_external_source(data: Mapping[str, Any]) -> ExternalSource:
    """The typed ExternalSource of a wire dict; raises `SpecError` listing all problems."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(document)", "must be an object")])
    problems = validate_spec(data.get("spec"))
    if problems:
        raise SpecError(problems)
    try:
        return from_wire(ExternalSource, _without_nulls(data))
    except cattrs.BaseValidationError as exc:
        raise SpecError([_problem(line) for line in cattrs.transform_error(exc)]) from None


def parse_spec(spec: Any) -> ExternalSourceSpec:
    """The typed spec of a wire dict (what the reconciler works on); raises `SpecError`."""
    problems = validate_spec(spec)
    if problems:
        raise SpecError(problems)
    try:
        return from_wire(ExternalSourceSpec, _without_nulls(spec))
    except cattrs.BaseValidationError as exc:
        found = [_problem(line) for line in cattrs.transform_error(exc)]
        raise SpecError([Problem(f"spec.{p.path}", p.message) for p in found]) from None


def _without_nulls(value: Any) -> Any:
    """Drop `key: null` entries, as the API server prunes them before defaulting."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _problem(line: str) -> Problem:
    """cattrs' `message @ $.a.b` → Problem("a.b", message)."""
    message, _, where = line.rpartition(" @ ")
    return Problem(where.removeprefix("$.") or "(document)", message or line)
