"""Kubernetes Events (and optionally Flux notification-controller events) for users.

Events are best-effort: a failure to record one is logged and never fails a
reconcile. A Warning is recorded once per distinct (reason, message) of an
object, not on every retry of the same error; the memory of what was last
said is per object and dropped when the object is deleted, so it stays
bounded by the number of sources.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any

import aiohttp
import structlog

from controller.resources import EVENTS, ApiError, KubeClient

log = structlog.get_logger(__name__)

COMPONENT = "externalsource-controller"
_EVENTS_ADDR_TIMEOUT = aiohttp.ClientTimeout(total=5)


class EventRecorder:
    def __init__(
        self, kube: KubeClient, *, events_addr: str = "", instance: str = COMPONENT
    ) -> None:
        self._kube = kube
        self._events_addr = events_addr
        self._instance = instance
        self._last_warning: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def normal(
        self, obj: dict[str, Any], *, reason: str, message: str, revision: str | None = None
    ) -> None:
        self._last_warning.pop(_key(obj), None)
        await self._record(obj, type_="Normal", reason=reason, message=message, revision=revision)

    async def warning(self, obj: dict[str, Any], *, reason: str, message: str) -> None:
        """Record a Warning unless it repeats the last one said about this object."""
        key = _key(obj)
        if self._last_warning.get(key) == (reason, message):
            return
        self._last_warning[key] = (reason, message)
        await self._record(obj, type_="Warning", reason=reason, message=message, revision=None)

    def forget(self, obj: dict[str, Any]) -> None:
        self._last_warning.pop(_key(obj), None)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _record(
        self,
        obj: dict[str, Any],
        *,
        type_: str,
        reason: str,
        message: str,
        revision: str | None,
    ) -> None:
        meta = obj["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta["namespace"],
                "annotations": {"source.flux.oddkin.co/revision": revision} if revision else {},
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._kube.create(EVENTS, meta["namespace"], event)
        except ApiError as exc:
            log.warning("event not recorded", reason=reason, error=exc.message)
        if self._events_addr:
            await self._post_flux_event(
                involved,
                type_=type_,
                reason=reason,
                message=message,
                revision=revision,
                timestamp=now,
            )

    async def _post_flux_event(
        self,
        involved: dict[str, Any],
        *,
        type_: str,
        reason: str,
        message: str,
        revision: str | None,
        timestamp: str,
    ) -> None:
        """POST in the format Flux's notification-controller accepts (fluxcd/pkg runtime/events)."""
        payload = {
            "involvedObject": involved,
            "severity": "info" if type_ == "Normal" else "error",
            "timestamp": timestamp,
            "message": message,
            "reason": reason,
            "metadata": {"revision": revision} if revision else {},
            "reportingController": COMPONENT,
            "reportingInstance": self._instance,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_EVENTS_ADDR_TIMEOUT)
        try:
            async with self._session.post(self._events_addr, json=payload) as resp:
                if resp.status >= 400:
                    log.warning("event not forwarded", status=resp.status, reason=reason)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("event not forwarded", error=type(exc).__name__, reason=reason)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj.get("kind")), meta["namespace"], meta["name"])
