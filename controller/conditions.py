"""Kubernetes conditions as Flux and kstatus expect them, on plain status dicts.

A condition's `lastTransitionTime` changes only when its status flips, so a
reconcile that changes nothing produces an identical status and the reconciler
can skip the write. Every condition carries the generation it describes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from controller.api import reasons as r

Condition = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
) -> list[Condition]:
    """Return a new list with `type_` set; keeps lastTransitionTime unless status flips."""
    old = find(conditions, type_)
    changed = old is None or old.get("status") != status
    new: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now_rfc3339()
        if changed
        else old.get("lastTransitionTime", now_rfc3339()),  # type: ignore[union-attr]
    }
    result = [c for c in conditions if c.get("type") != type_]
    result.append(new)
    return sorted(result, key=_order)


def remove(conditions: Sequence[Condition], *types: str) -> list[Condition]:
    return [c for c in conditions if c.get("type") not in types]


def same(a: Sequence[Condition], b: Sequence[Condition]) -> bool:
    """Equal apart from lastTransitionTime (which set_condition preserves anyway)."""

    def strip(cs: Sequence[Condition]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                c.get("type"),
                c.get("status"),
                c.get("reason"),
                c.get("message"),
                c.get("observedGeneration"),
            )
            for c in cs
        )

    return strip(a) == strip(b)


#: progress conditions the seed asks for; present only while that phase runs on a change path
PHASES = (r.FETCHING, r.EXECUTING_HOOKS, r.STORING)
# Ready first, then the kstatus pair, then the rest: the order `kubectl describe` shows.
_ORDER = (r.READY, r.RECONCILING, r.STALLED, r.ARTIFACT_IN_STORAGE, *PHASES)


def _order(cond: Condition) -> int:
    t = cond.get("type")
    return _ORDER.index(t) if t in _ORDER else len(_ORDER)


# The three transitions the reconciler makes, as kstatus and Flux expect them.


def progressing(conditions: Sequence[Condition], *, phase: str, generation: int) -> list[Condition]:
    """Work under way on a change path: Ready Unknown, Reconciling True, the phase True."""
    message = f"{phase} in progress"
    result = remove(conditions, *PHASES)
    for type_, status in ((r.READY, "Unknown"), (r.RECONCILING, "True"), (phase, "True")):
        result = set_condition(
            result, type_=type_, status=status, reason=r.PROGRESSING, message=message,
            generation=generation,
        )  # fmt: skip
    return result


def succeeded(conditions: Sequence[Condition], *, message: str, generation: int) -> list[Condition]:
    """Ready and ArtifactInStorage True; progress and failure conditions gone."""
    result = remove(conditions, r.RECONCILING, r.STALLED, *PHASES)
    for type_ in (r.READY, r.ARTIFACT_IN_STORAGE):
        result = set_condition(
            result, type_=type_, status="True", reason=r.SUCCEEDED, message=message,
            generation=generation,
        )  # fmt: skip
    return result


def failed(
    conditions: Sequence[Condition], *, reason: str, message: str, transient: bool, generation: int
) -> list[Condition]:
    """Ready False; transient → Reconciling/ProgressingWithRetry, otherwise Stalled."""
    result = remove(conditions, *PHASES, r.STALLED if transient else r.RECONCILING)
    result = set_condition(
        result, type_=r.READY, status="False", reason=reason, message=message,
        generation=generation,
    )  # fmt: skip
    if transient:
        return set_condition(
            result, type_=r.RECONCILING, status="True", reason=r.PROGRESSING_WITH_RETRY,
            message=message, generation=generation,
        )  # fmt: skip
    return set_condition(
        result, type_=r.STALLED, status="True", reason=reason, message=message,
        generation=generation,
    )  # fmt: skip
