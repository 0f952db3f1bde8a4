"""Delay sequences of the rate limiters and the reconnect backoff."""

from __future__ import annotations

import pytest

from controller.runtime.ratelimit import (
    BucketLimiter,
    ItemExponentialLimiter,
    MaxOfLimiter,
    ReconnectBackoff,
    default_controller_limiter,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_exponential_sequence_is_capped() -> None:
    limiter = ItemExponentialLimiter(base=1, cap=300, jitter=0)
    assert [limiter.when("a") for _ in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert limiter.num_requeues("a") == 11


def test_exponential_is_per_key_and_forget_resets() -> None:
    limiter = ItemExponentialLimiter(base=1, cap=300, jitter=0)
    limiter.when("a")
    limiter.when("a")
    assert limiter.when("b") == 1
    limiter.forget("a")
    assert limiter.when("a") == 1


def test_jitter_keeps_the_lower_bound_and_the_cap() -> None:
    high = ItemExponentialLimiter(base=1, cap=300, jitter=0.5, rnd=lambda: 0.999999)
    low = ItemExponentialLimiter(base=1, cap=300, jitter=0.5, rnd=lambda: 0.0)
    high_seq = [high.when("a") for _ in range(12)]
    low_seq = [low.when("a") for _ in range(12)]
    assert low_seq[:8] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert high_seq[0] == pytest.approx(1.5)
    assert all(d <= 300 for d in high_seq)
    # saturated: spread over [cap/1.5, cap], not collapsed onto the cap
    assert low_seq[-1] == pytest.approx(200)
    assert high_seq[-1] == pytest.approx(300)


def test_exponential_survives_huge_failure_counts() -> None:
    limiter = ItemExponentialLimiter(base=1, cap=300, jitter=0)
    for _ in range(2000):
        delay = limiter.when("a")
    assert delay == 300


def test_bucket_burst_then_qps_with_debt() -> None:
    clock = FakeClock()
    bucket = BucketLimiter(qps=10, burst=100, clock=clock)
    delays = [bucket.when("x") for _ in range(103)]
    assert delays[:100] == [0.0] * 100
    assert delays[100:] == pytest.approx([0.1, 0.2, 0.3])
    clock.now = 10.0  # refill 100 tokens, minus the 3 of debt
    assert [bucket.when("x") for _ in range(97)] == [0.0] * 97
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.num_requeues("x") == 0


def test_max_of_asks_every_limiter() -> None:
    clock = FakeClock()
    limiter = MaxOfLimiter(
        [
            ItemExponentialLimiter(base=1, cap=300, jitter=0),
            BucketLimiter(qps=1, burst=1, clock=clock),
        ]
    )
    assert limiter.when("a") == 1  # bucket: 0, item: 1
    assert limiter.when("b") == 1  # bucket: 1 (debt), item: 1
    assert limiter.when("c") == 2  # bucket: 2, item: 1
    assert limiter.num_requeues("a") == 1
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


async def test_default_controller_limiter_starts_at_min_delay() -> None:
    limiter = default_controller_limiter(min_delay=1.0, max_delay=300.0)
    first = limiter.when("a")
    assert 1.0 <= first <= 1.5


def test_reconnect_backoff_doubles_to_the_cap_and_resets_after_healthy_period() -> None:
    clock = FakeClock()
    backoff = ReconnectBackoff(clock=clock, rnd=lambda: 0.0)
    delays = []
    for _ in range(8):
        delays.append(backoff.next_delay())
        clock.now += 1
    assert delays == pytest.approx([0.8, 1.6, 3.2, 6.4, 12.8, 15.0, 15.0, 15.0])
    clock.now += 121
    assert backoff.next_delay() == pytest.approx(0.8)


def test_reconnect_backoff_jitter_stays_within_bounds() -> None:
    clock = FakeClock()
    backoff = ReconnectBackoff(clock=clock, rnd=lambda: 0.999999)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays[0] == pytest.approx(1.6)
    assert max(delays) <= 30.0
