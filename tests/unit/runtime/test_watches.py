"""The predicates: which changes of an ExternalSource or ExternalArtifact enqueue what."""

from __future__ import annotations

import copy
from typing import Any

from controller.runtime.keys import ObjectKey
from controller.runtime.watches import ArtifactOwnerHandler, SourceHandler


def source(**meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "s",
            "generation": 1,
            "resourceVersion": "1",
            **meta,
        },
        "spec": {"interval": "1m"},
        "status": {},
    }


def artifact() -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "s",
            "labels": {"a": "b"},
            "ownerReferences": [
                {
                    "apiVersion": "source.flux.oddkin.co/v1alpha1",
                    "kind": "ExternalSource",
                    "name": "owner",
                    "controller": True,
                }
            ],
        },
        "spec": {"sourceRef": {"kind": "ExternalSource", "name": "owner"}},
        "status": {"artifact": {"revision": "r1"}},
    }


def recorder() -> tuple[list[ObjectKey], SourceHandler, ArtifactOwnerHandler]:
    seen: list[ObjectKey] = []
    return seen, SourceHandler(seen.append), ArtifactOwnerHandler(seen.append)


def test_source_add_and_delete_enqueue() -> None:
    seen, handler, _ = recorder()
    handler.on_add(source())
    handler.on_delete(source())
    assert seen == [ObjectKey("ns", "s")] * 2


def test_source_status_write_is_ignored_and_spec_change_is_not() -> None:
    seen, handler, _ = recorder()
    old = source()
    status_write = copy.deepcopy(old)
    status_write["status"] = {"conditions": [{"type": "Ready"}]}
    status_write["metadata"]["resourceVersion"] = "2"
    handler.on_update(old, status_write)
    assert seen == []
    spec_change = copy.deepcopy(status_write)
    spec_change["metadata"]["generation"] = 2
    handler.on_update(status_write, spec_change)
    assert seen == [ObjectKey("ns", "s")]


def test_source_requested_at_deletion_and_finalizers_enqueue() -> None:
    seen, handler, _ = recorder()
    handler.on_update(source(), source(annotations={"reconcile.fluxcd.io/requestedAt": "now"}))
    handler.on_update(source(), source(deletionTimestamp="2026-01-01T00:00:00Z"))
    handler.on_update(source(finalizers=["x"]), source())
    handler.on_update(source(annotations={"other": "1"}), source(annotations={"other": "2"}))
    assert len(seen) == 3


def test_source_without_generation_compares_spec() -> None:
    seen, handler, _ = recorder()
    old, new = source(generation=None), source(generation=None)
    handler.on_update(old, new)
    new["spec"] = {"interval": "2m"}
    handler.on_update(old, new)
    assert len(seen) == 1


def test_artifact_status_changes_are_ours_and_ignored() -> None:
    seen, _, handler = recorder()
    old = artifact()
    new = copy.deepcopy(old)
    new["status"] = {"artifact": {"revision": "r2"}, "conditions": []}
    handler.on_add(new)
    handler.on_update(old, new)
    assert seen == []


def test_artifact_edit_or_delete_enqueues_the_owner() -> None:
    seen, _, handler = recorder()
    old = artifact()
    edited = copy.deepcopy(old)
    edited["spec"]["sourceRef"]["name"] = "someone-else"
    handler.on_update(old, edited)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {}
    handler.on_update(old, relabelled)
    handler.on_delete(old)
    assert seen == [ObjectKey("ns", "owner")] * 3


def test_artifact_without_our_controller_is_ignored() -> None:
    seen, _, handler = recorder()
    orphan = artifact()
    orphan["metadata"]["ownerReferences"][0]["kind"] = "Other"
    handler.on_delete(orphan)
    assert seen == []
