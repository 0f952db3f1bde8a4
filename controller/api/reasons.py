"""Condition types, reasons, annotations and API names as constants in one place.

Flux's names are used wherever Flux has one, so `flux`-style tooling, kstatus
and users' alerting rules read our conditions like any other Flux source's.
"""

from __future__ import annotations

GROUP = "source.flux.oddkin.co"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ExternalSource"
PLURAL = "externalsources"

FINALIZER = "source.flux.oddkin.co/finalizer"
REQUESTED_AT_ANNOTATION = "reconcile.fluxcd.io/requestedAt"

# condition types
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
ARTIFACT_IN_STORAGE = "ArtifactInStorage"
FETCHING = "Fetching"
EXECUTING_HOOKS = "ExecutingHooks"
STORING = "Storing"

# reasons
SUCCEEDED = "Succeeded"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
FETCH_FAILED = "FetchFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason, not a secret
INVALID_SPEC = "InvalidSpec"
HOOK_FAILED = "HookFailed"
HOOK_NOT_ALLOWED = "HookNotAllowed"
INVALID_CEL_EXPRESSION = "InvalidCELExpression"
ARTIFACT_CONFLICT = "ArtifactConflict"
API_ERROR = "KubernetesAPIError"
NEW_ARTIFACT = "NewArtifact"
