"""Which API write an Event occurrence turns into: client-go's EventCorrelator, in small.

A controller that records an Event on every occurrence floods etcd and buries
`kubectl describe` under copies. client-go (`tools/record/events_cache.go`)
answers with two mechanisms, which we take with its defaults:

* **Aggregation.** Occurrences with the same involved object (kind,
  namespace, name, uid), type, reason and message are one Event: the first
  is created, each repeat within `window` of the previous one becomes a
  merge PATCH of that Event's `count` and `lastTimestamp`. The memory is an
  LRU of `max_entries` (client-go: 4096), so it is bounded whatever the
  number of objects. Past the window (default one hour, the API server's
  default `--event-ttl`, after which the old Event is likely gone) a new
  Event is created.
* **Spam filter.** A token bucket per involved object (client-go: burst 25,
  one token back every 5 minutes) bounds the writes about one object. A
  filtered occurrence still raises the count, so the next write that passes
  carries the true total, as client-go's does.

Everything here is synchronous and takes the time as an argument: the sender
task in `controller.events` passes the event loop's clock, tests pass
numbers (docs/architecture.md, "Events").
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Final, TypeVar

import attrs

#: longest name the API server accepts for an Event (a DNS subdomain)
MAX_EVENT_NAME: Final = 253
_SUFFIX_HEX: Final = 16

#: the involved object: kind, namespace, name, uid
ObjectRef = tuple[str, str, str, str]
#: an occurrence's identity: the object, type, reason, message
EventKey = tuple[ObjectRef, str, str, str]
_K = TypeVar("_K")
_V = TypeVar("_V")


def event_name(object_name: str) -> str:
    """`<object name>.<16 random hex>`, the object name cut so the whole fits 253 characters.

    client-go appends the time in hex and never truncates, so long object
    names make Events the API server refuses. A cut name keeps ending on a
    letter or digit (a valid DNS subdomain); uniqueness comes from the suffix.
    """
    suffix = secrets.token_hex(_SUFFIX_HEX // 2)
    prefix = object_name[: MAX_EVENT_NAME - _SUFFIX_HEX - 1].rstrip(".-")
    return f"{prefix}.{suffix}"


@attrs.define
class Observation:
    """What we know of one aggregated Event: its name, the count so far, whether it exists."""

    name: str
    count: int
    first_timestamp: str
    last_timestamp: str
    last_seen: float
    exists: bool = False


@attrs.frozen
class Write:
    """One API write: create the Event, or patch `count`/`lastTimestamp` of an existing one."""

    observation: Observation

    @property
    def create(self) -> bool:
        return not self.observation.exists


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class EventCorrelator:
    """Aggregation and the per-object spam filter; all state bounded by `max_entries`."""

    def __init__(
        self,
        *,
        burst: int = 25,
        refill_seconds: float = 300.0,
        window: float = 3600.0,
        max_entries: int = 4096,
    ) -> None:
        if burst < 1 or refill_seconds <= 0 or window < 0 or max_entries < 1:
            raise ValueError("need burst >= 1, refill_seconds > 0, window >= 0, max_entries >= 1")
        self._burst = burst
        self._refill = refill_seconds
        self._window = window
        self._max = max_entries
        self._seen: OrderedDict[EventKey, Observation] = OrderedDict()
        self._buckets: OrderedDict[ObjectRef, _Bucket] = OrderedDict()

    def observe(
        self, key: EventKey, *, object_name: str, timestamp: str, now: float
    ) -> Write | None:
        """Count one occurrence; the write to make, or None when the spam filter drops it."""
        observation = self._seen.get(key)
        if observation is not None and now - observation.last_seen <= self._window:
            observation.count += 1
            observation.last_timestamp = timestamp
            observation.last_seen = now
            self._seen.move_to_end(key)
        else:
            observation = Observation(
                name=event_name(object_name),
                count=1,
                first_timestamp=timestamp,
                last_timestamp=timestamp,
                last_seen=now,
            )
            self._remember(self._seen, key, observation)
        if not self._allow(key[0], now):
            return None
        return Write(observation)

    def forget(self, ref: ObjectRef) -> None:
        """Drop everything about one object (it was deleted)."""
        self._buckets.pop(ref, None)
        for key in [k for k in self._seen if k[0] == ref]:
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)

    def _allow(self, ref: ObjectRef, now: float) -> bool:
        bucket = self._buckets.get(ref)
        if bucket is None:
            bucket = _Bucket(tokens=float(self._burst), updated=now)
            self._remember(self._buckets, ref, bucket)
        else:
            self._buckets.move_to_end(ref)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self._burst), bucket.tokens + elapsed / self._refill)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _remember(self, cache: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._max:
            cache.popitem(last=False)
