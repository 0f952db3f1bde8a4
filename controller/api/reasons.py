"""Condition types, condition statuses and the reasons the controller itself sets.

Flux's names are used wherever Flux has one, so `flux`-style tooling, kstatus
and users' alerting rules read our conditions like any other Flux source's.
The leaf rooms keep the reasons they raise next to their errors
(`generators/reasons.py`, `hooks/spec.py`, `storage/reasons.py`); the ones the
controller itself sets, and every condition type, live here. docs/api.md lists
each of them (a test keeps the two in step). API names (group, kinds,
finalizer, annotations) are in `controller.api.names`.
"""

from __future__ import annotations

from typing import Final

# condition types
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
ARTIFACT_IN_STORAGE: Final = "ArtifactInStorage"
FETCHING: Final = "Fetching"
EXECUTING_HOOKS: Final = "ExecutingHooks"
STORING: Final = "Storing"

# condition statuses (metav1.ConditionStatus)
TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

# reasons
SUCCEEDED: Final = "Succeeded"
PROGRESSING: Final = "Progressing"
PROGRESSING_WITH_RETRY: Final = "ProgressingWithRetry"
SECRET_NOT_FOUND: Final = "SecretNotFound"  # noqa: S105 - a reason, not a secret
INVALID_SPEC: Final = "InvalidSpec"
ARTIFACT_CONFLICT: Final = "ArtifactConflict"
API_ERROR: Final = "KubernetesAPIError"

# event reasons
NEW_ARTIFACT: Final = "NewArtifact"
