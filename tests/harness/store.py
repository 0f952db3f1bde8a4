"""The emulator's object store: the API-server write semantics, without HTTP.

Every write goes through one pipeline that mirrors the API server's registry
for custom resources (and, simplified, for the built-ins we serve):

* create: name (or `generateName`), namespace from the URL, `status` dropped
  when it is a subresource, prune → default → validate (422 with causes),
  then `uid`, `creationTimestamp`, `generation: 1`, `resourceVersion` stamped.
* update (PATCH/PUT, main resource or `/status`): `metadata.resourceVersion`
  in the new object is a precondition (409 Conflict when stale); the main
  resource cannot change `status`, `/status` changes nothing but `status`;
  server-owned metadata cannot be changed; no new finalizers once deleting;
  a write that changes nothing is a no-op (no new resourceVersion, no event);
  `generation` moves when anything outside metadata and status changes.
* delete: with finalizers it only sets `deletionTimestamp` (and bumps
  `generation`); the object goes when an update empties `finalizers`.

One global resourceVersion counter orders all writes; each write appends a
watch event to `history` (ADDED/MODIFIED/DELETED, with the previous state so a
label-selected watch can turn a modification into ADDED/DELETED). `compact()`
forgets history, so watches from an older resourceVersion get 410 Gone.
"""

from __future__ import annotations

import base64
import bisect
import copy
import datetime
import json
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock

from tests.harness.resources import ResourceType
from tests.harness.schemas import Cause
from tests.harness.selectors import Selector

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (resource key, namespace or "", name)
_SERVER_OWNED = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
_NAME_ALPHABET = string.ascii_lowercase + string.digits


def api_error(
    status: int, reason: str, message: str, details: Obj | None = None
) -> kmock.KubernetesError:
    """A Kubernetes `Status` failure; kmock renders it as the JSON body with that HTTP code."""
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details)


def not_found(rtype: ResourceType, name: str) -> kmock.KubernetesError:
    return api_error(
        404,
        "NotFound",
        f'{rtype.qualified} "{name}" not found',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def conflict(rtype: ResourceType, name: str) -> kmock.KubernetesError:
    return api_error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def invalid(rtype: ResourceType, name: str, causes: list[Cause]) -> kmock.KubernetesError:
    listed = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    text = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    group = f".{rtype.group}" if rtype.group else ""
    return api_error(
        422,
        "Invalid",
        f'{rtype.kind}{group} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": rtype.group,
            "kind": rtype.kind,
            "causes": [c.to_dict() for c in causes],
        },
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what merge, strategic and — here — apply patches do)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Obj, ops: list[Any], rtype: ResourceType, name: str) -> Obj:
    """RFC 6902; a failed `test` op or a bad path is a 422 like the API server returns."""
    try:
        result: Obj = jsonpatch.apply_patch(target, ops)
    except jsonpatch.InvalidJsonPatch as exc:
        raise api_error(400, "BadRequest", f"invalid JSON patch: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        cause = Cause("", "FieldValueInvalid", f"the JSON patch could not be applied: {exc}")
        raise invalid(rtype, name, [cause]) from exc
    return result


def _encode_continue(rv: str, start: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": start}).encode()).decode()


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["rv"]), int(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise api_error(400, "BadRequest", "invalid continue token") from exc


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in {"metadata", "status"}}


@attrs.frozen
class Event:
    """One watch event in the history, numbered by the write's resourceVersion."""

    rv: int
    resource: str
    type: str
    object: Obj
    old: Obj | None = None


@attrs.define
class Store:
    objects: dict[Key, Obj] = attrs.field(factory=dict)
    history: list[Event] = attrs.field(factory=list)
    rv: int = 0
    compacted: int = 0  # watches from a resourceVersion below this get 410 Gone
    listeners: list[Callable[[], None]] = attrs.field(factory=list)

    # reads ------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        obj = self.objects.get((rtype.key, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def select(self, rtype: ResourceType, selector: Selector) -> list[Obj]:
        keys = sorted(k for k in self.objects if k[0] == rtype.key)
        return [copy.deepcopy(self.objects[k]) for k in keys if selector(self.objects[k])]

    def page(
        self, rtype: ResourceType, selector: Selector, *, limit: int, token: str
    ) -> tuple[list[Obj], Obj]:
        """One page of a LIST and its list metadata (`resourceVersion`, `continue`).

        The token pins the first page's resourceVersion (410 once compacted), but
        later pages are read from the current state, not from a snapshot.
        """
        items = self.select(rtype, selector)
        list_rv, start = str(self.rv), 0
        if token:
            list_rv, start = _decode_continue(token)
            if int(list_rv) < self.compacted:
                raise api_error(410, "Expired", "The provided continue parameter is too old")
        page = items[start : start + limit] if limit > 0 else items[start:]
        meta: Obj = {"resourceVersion": list_rv}
        if limit > 0 and start + limit < len(items):
            meta["continue"] = _encode_continue(list_rv, start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        return page, meta

    def events_after(self, rv: int) -> list[Event]:
        start = bisect.bisect_right([e.rv for e in self.history], rv)
        return self.history[start:]

    def compact(self) -> int:
        """Forget all history up to now (like etcd compaction); returns the compaction RV."""
        self.compacted = self.rv
        self.history.clear()
        return self.rv

    # writes -----------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str | None, body: Obj) -> Obj:
        if not isinstance(body, dict):
            raise api_error(400, "BadRequest", "the body of the request was not an object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise api_error(400, "BadRequest", "metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name") or ""
        if not name:
            cause = Cause(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
            raise invalid(rtype, name, [cause])
        if rtype.namespaced:
            if namespace is None:
                raise api_error(404, "NotFound", "namespaced resources are created in a namespace")
            if meta.get("namespace") not in (None, namespace):
                raise api_error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = (rtype.key, meta.get("namespace", ""), name)
        if key in self.objects:
            raise api_error(
                409,
                "AlreadyExists",
                f'{rtype.qualified} "{name}" already exists',
                {"name": name, "group": rtype.group, "kind": rtype.plural},
            )
        for field in (*_SERVER_OWNED, "resourceVersion", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        if rtype.status_subresource:
            obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        self._admit(rtype, obj, old=None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rtype.generation:
            meta["generation"] = 1
        return self._write(rtype, key, "ADDED", obj, old=None)

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        change: Callable[[Obj], Obj],
        subresource: str | None = None,
    ) -> Obj:
        """Apply `change` (a patch or a replacement) to the stored object, server-style."""
        key = (rtype.key, namespace or "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(rtype, name)
        new = change(copy.deepcopy(old))
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise api_error(400, "BadRequest", "the patched object is not a Kubernetes object")
        wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(rtype, name)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new.pop("status", None)
            if status is not None:
                new["status"] = status
        elif rtype.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for field in ("name", "namespace", "resourceVersion", *_SERVER_OWNED):
            meta.pop(field, None)
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        deleting = "deletionTimestamp" in old["metadata"]
        added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
        if deleting and added:
            cause = Cause(
                "metadata.finalizers",
                "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            )
            raise invalid(rtype, name, [cause])
        self._admit(rtype, new, old=old)
        if new == old:
            return copy.deepcopy(old)
        if rtype.generation and _content(new) != _content(old):
            meta["generation"] = int(meta.get("generation", 0)) + 1
        if deleting and not meta.get("finalizers"):
            del self.objects[key]
            return self._write(rtype, None, "DELETED", new, old=old)
        return self._write(rtype, key, "MODIFIED", new, old=old)

    def delete(
        self, rtype: ResourceType, namespace: str | None, name: str, *, options: Obj | None = None
    ) -> Obj:
        key = (rtype.key, namespace or "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(rtype, name)
        pre = (options or {}).get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(rtype, name)
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise conflict(rtype, name)
        if old["metadata"].get("finalizers"):
            if "deletionTimestamp" in old["metadata"]:
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rtype.generation:
                new["metadata"]["generation"] = int(new["metadata"].get("generation", 0)) + 1
            return self._write(rtype, key, "MODIFIED", new, old=old)
        del self.objects[key]
        return self._write(rtype, None, "DELETED", copy.deepcopy(old), old=old)

    # internals --------------------------------------------------------------
    def _admit(self, rtype: ResourceType, obj: Obj, *, old: Obj | None) -> None:
        if rtype.schema is None:
            return
        rtype.schema.admit(obj)
        causes = rtype.schema.causes(obj, old=old)
        if causes:
            raise invalid(rtype, obj["metadata"].get("name", ""), causes)

    def _write(
        self, rtype: ResourceType, key: Key | None, kind: str, obj: Obj, *, old: Obj | None
    ) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if key is not None:
            self.objects[key] = obj
        self.history.append(Event(self.rv, rtype.key, kind, copy.deepcopy(obj), copy.deepcopy(old)))
        for listener in list(self.listeners):
            listener()
        return copy.deepcopy(obj)
