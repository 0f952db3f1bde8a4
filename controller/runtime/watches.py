"""What the informers enqueue: the predicates of docs/architecture.md ("Runtime").

ExternalSource (the key is the object itself): enqueue on add, on a
`metadata.generation` change (a spec change; status writes do not bump it),
on a change of the `reconcile.fluxcd.io/requestedAt` annotation (`flux
reconcile source external`), when deletion starts or the finalizers change
(except our own finalizer being added: the reconcile that added it carries
on), and on delete. Our own status writes change none of these, so they never
trigger a reconcile.

ExternalArtifact (the key is its controlling ExternalSource): the object's
status is ours alone (we write it from the owner's status), so status changes
are ignored — that is what keeps our own writes from re-triggering the owner.
A change of `spec`, labels or ownerReferences (someone edited or adopted our
child) and a deletion enqueue the owner, which repairs or recreates it. An
add is ignored: at start-up the ExternalSource list enqueues every owner, and
afterwards the adds are our own creations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.api.names import FINALIZER, GROUP, KIND, REQUESTED_AT_ANNOTATION
from controller.runtime.informer import RawObject
from controller.runtime.keys import ObjectKey, key_of

Enqueue = Callable[[ObjectKey], None]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def source_changed(old: RawObject, new: RawObject) -> bool:
    """Whether an ExternalSource update needs a reconcile."""
    old_meta, new_meta = _meta(old), _meta(new)
    if old_meta.get("generation") is None or new_meta.get("generation") is None:
        generation_changed = old.get("spec") != new.get("spec")
    else:
        generation_changed = old_meta["generation"] != new_meta["generation"]
    old_ann = old_meta.get("annotations") or {}
    new_ann = new_meta.get("annotations") or {}
    return (
        generation_changed
        or old_ann.get(REQUESTED_AT_ANNOTATION) != new_ann.get(REQUESTED_AT_ANNOTATION)
        or old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp")
        or _finalizers_changed(old_meta, new_meta)
    )


def _finalizers_changed(old_meta: Mapping[str, Any], new_meta: Mapping[str, Any]) -> bool:
    """A change of finalizers, unless it is only ours being added (our own first write:
    reconciling again on it would race the first reconcile's status writes)."""
    old, new = list(old_meta.get("finalizers") or ()), list(new_meta.get("finalizers") or ())
    return new not in (old, [*old, FINALIZER])


def artifact_changed(old: RawObject, new: RawObject) -> bool:
    """Whether someone changed what we own in an ExternalArtifact (status is ignored)."""
    old_meta, new_meta = _meta(old), _meta(new)
    return (
        old.get("spec") != new.get("spec")
        or old_meta.get("labels") != new_meta.get("labels")
        or old_meta.get("ownerReferences") != new_meta.get("ownerReferences")
    )


def owner_key(obj: RawObject) -> ObjectKey | None:
    """The controlling ExternalSource of an ExternalArtifact, if any."""
    meta = _meta(obj)
    for ref in meta.get("ownerReferences") or ():
        group = str(ref.get("apiVersion", "")).split("/")[0]
        if ref.get("controller") and ref.get("kind") == KIND and group == GROUP:
            return ObjectKey(meta.get("namespace") or "", ref["name"])
    return None


class SourceHandler:
    """Enqueues an ExternalSource's own key on the changes that need a reconcile."""

    def __init__(self, enqueue: Enqueue) -> None:
        self._enqueue = enqueue

    def on_add(self, obj: RawObject) -> None:
        self._enqueue(key_of(obj))

    def on_update(self, old: RawObject, new: RawObject) -> None:
        if source_changed(old, new):
            self._enqueue(key_of(new))

    def on_delete(self, obj: RawObject) -> None:
        self._enqueue(key_of(obj))


class ArtifactOwnerHandler:
    """Enqueues the owning ExternalSource when its ExternalArtifact is tampered with."""

    def __init__(self, enqueue: Enqueue) -> None:
        self._enqueue = enqueue

    def on_add(self, obj: RawObject) -> None:
        """Our own creations (and the start-up list) need nothing."""

    def on_update(self, old: RawObject, new: RawObject) -> None:
        if artifact_changed(old, new):
            self._enqueue_owner(new)

    def on_delete(self, obj: RawObject) -> None:
        self._enqueue_owner(obj)

    def _enqueue_owner(self, obj: RawObject) -> None:
        key = owner_key(obj)
        if key is not None:
            self._enqueue(key)


#: where a source names a Secret, per generator type (what `secret_names` looks at)
_SECRET_REFS = {
    "http": ("headersSecretRef", "caBundleSecretRef", "certSecretRef", "proxySecretRef"),
    "s3": ("credentialsSecretRef", "caBundleSecretRef"),
}


def secret_names(source: RawObject) -> set[str]:
    """The Secrets (in its own namespace) an ExternalSource reads."""
    generator = (source.get("spec") or {}).get("generator") or {}
    config = generator.get(generator.get("type")) or {}
    refs = (config.get(field) for field in _SECRET_REFS.get(str(generator.get("type")), ()))
    return {ref["name"] for ref in refs if isinstance(ref, Mapping) and ref.get("name")}


class SecretUserHandler:
    """Enqueues the sources that use a watched Secret when its data changes, it appears or it
    goes (Flux's `--watch-configs-label-selector`): a rotated API key is picked up at once."""

    def __init__(self, enqueue: Enqueue, sources: Callable[[], list[RawObject]]) -> None:
        self._enqueue = enqueue
        self._sources = sources

    def on_add(self, obj: RawObject) -> None:
        self._enqueue_users(obj)

    def on_update(self, old: RawObject, new: RawObject) -> None:
        if old.get("data") != new.get("data") or old.get("stringData") != new.get("stringData"):
            self._enqueue_users(new)

    def on_delete(self, obj: RawObject) -> None:
        self._enqueue_users(obj)

    def _enqueue_users(self, secret: RawObject) -> None:
        meta = _meta(secret)
        namespace, name = meta.get("namespace"), meta.get("name")
        for source in self._sources():
            if _meta(source).get("namespace") == namespace and name in secret_names(source):
                self._enqueue(key_of(source))
