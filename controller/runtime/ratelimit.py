"""Rate limiters for the workqueue and the reconnect backoff of the informers.

Shaped after client-go's `default_rate_limiters.go` so the behaviour is the one
operators already know, with one deliberate addition: jitter. client-go's
per-item limiter is a pure `base * 2**failures`, which makes every source that
failed in the same second retry in the same second. We multiply by
`1 + jitter * random()`, which keeps the lower bound (a retry never comes
earlier than the exponential step) and spreads the herd upwards. The cap bounds
the *result*: once the exponential step reaches `cap / (1 + jitter)` the delay
is spread over `[cap / (1 + jitter), cap]` instead of collapsing onto `cap`.

The token bucket runs on the event loop's clock (so fake loop time in tests is
honoured) and has `golang.org/x/time/rate` debt semantics: every call reserves a
token, the balance may go negative, and the delay is the time until the balance
is back at zero. All limiters are synchronous and cheap: `when` is called with
the queue's state, never awaits.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

Clock = Callable[[], float]


def loop_clock() -> float:
    """The running event loop's clock (fake under looptime)."""
    return asyncio.get_running_loop().time()


def jittered(step: float, *, jitter: float, cap: float, rnd: Callable[[], float]) -> float:
    """`step` spread upwards by up to `jitter` (a fraction), never above `cap`."""
    ceiling = cap / (1.0 + jitter)
    return min(step, ceiling) * (1.0 + jitter * rnd())


class RateLimiter(Protocol):
    """client-go's `TypedRateLimiter`: how long to wait before re-adding a key."""

    def when(self, key: Hashable) -> float: ...

    def forget(self, key: Hashable) -> None: ...

    def num_requeues(self, key: Hashable) -> int: ...


class ItemExponentialLimiter:
    """Per-key exponential backoff: `base`, `2*base`, `4*base` … up to `cap`, jittered."""

    def __init__(
        self,
        *,
        base: float,
        cap: float,
        jitter: float = 0.5,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base or jitter < 0:
            raise ValueError("need 0 < base <= cap and jitter >= 0")
        self._base = base
        self._cap = cap
        self._jitter = jitter
        self._rnd = rnd
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # past ~1000 doublings the float overflows; the cap has long been reached
        step = self._cap if failures > 1000 else self._base * math.pow(2, failures)
        return jittered(step, jitter=self._jitter, cap=self._cap, rnd=self._rnd)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class BucketLimiter:
    """An overall token bucket (`qps` refill, `burst` capacity) with debt semantics."""

    def __init__(self, *, qps: float, burst: int, clock: Clock = loop_clock) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("need qps > 0 and burst >= 1")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last: float | None = None

    def reserve(self) -> float:
        """Take one token now; return how long the caller must wait for it."""
        now = self._clock()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def when(self, key: Hashable) -> float:
        return self.reserve()

    def forget(self, key: Hashable) -> None:
        """The bucket is global: nothing per key to forget."""

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfLimiter:
    """Asks every limiter (each updates its state) and waits for the longest."""

    def __init__(self, limiters: Sequence[RateLimiter]) -> None:
        self._limiters = tuple(limiters)

    def when(self, key: Hashable) -> float:
        return max(limiter.when(key) for limiter in self._limiters)

    def forget(self, key: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self._limiters)


def default_controller_limiter(*, min_delay: float, max_delay: float) -> MaxOfLimiter:
    """client-go's `DefaultTypedControllerRateLimiter` with our delays and jitter."""
    return MaxOfLimiter(
        [ItemExponentialLimiter(base=min_delay, cap=max_delay), BucketLimiter(qps=10, burst=100)]
    )


class ReconnectBackoff:
    """client-go reflector backoff: 0.8 s doubling to 30 s, jitter 1.0, reset after 2 min.

    "Reset" means: if the last failure is older than `reset_after`, the next
    delay starts again at `initial`.
    """

    def __init__(
        self,
        *,
        initial: float = 0.8,
        cap: float = 30.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        clock: Clock = loop_clock,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial
        self._cap = cap
        self._jitter = jitter
        self._reset_after = reset_after
        self._clock = clock
        self._rnd = rnd
        self._step = initial
        self._last_failure: float | None = None

    def next_delay(self) -> float:
        now = self._clock()
        if self._last_failure is not None and now - self._last_failure > self._reset_after:
            self._step = self._initial
        self._last_failure = now
        delay = jittered(self._step, jitter=self._jitter, cap=self._cap, rnd=self._rnd)
        self._step = min(self._cap, self._step * 2)
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())
