"""Condition types, reasons, annotations and API names as constants in one place.

Flux's names are used wherever Flux has one, so `flux`-style tooling, kstatus
and users' alerting rules read our conditions like any other Flux source's.
The leaf rooms keep the reasons they raise next to their errors
(`generators/reasons.py`, `hooks/spec.py`, `storage/`); the ones the
controller itself sets, and every condition type, live here. docs/api.md lists
each of them (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "source.flux.oddkin.co"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ExternalSource"
PLURAL: Final = "externalsources"
SINGULAR: Final = "externalsource"
SHORT_NAME: Final = "exs"
CATEGORY: Final = "externalsources"

EXTERNAL_ARTIFACT_API_VERSION: Final = "source.toolkit.fluxcd.io/v1"
EXTERNAL_ARTIFACT_KIND: Final = "ExternalArtifact"

FINALIZER: Final = "source.flux.oddkin.co/finalizer"
REQUESTED_AT_ANNOTATION: Final = "reconcile.fluxcd.io/requestedAt"

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
SUSPENDED: Final = "Suspended"
FETCH_FAILED: Final = "FetchFailed"
STORAGE_OPERATION_FAILED: Final = "StorageOperationFailed"
SECRET_NOT_FOUND: Final = "SecretNotFound"  # noqa: S105 - a reason, not a secret
INVALID_SPEC: Final = "InvalidSpec"
HOOK_FAILED: Final = "HookFailed"
HOOK_NOT_ALLOWED: Final = "HookNotAllowed"
INVALID_CEL_EXPRESSION: Final = "InvalidCELExpression"
ARTIFACT_CONFLICT: Final = "ArtifactConflict"
API_ERROR: Final = "KubernetesAPIError"

# event reasons
NEW_ARTIFACT: Final = "NewArtifact"
