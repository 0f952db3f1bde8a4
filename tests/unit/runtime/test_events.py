"""The event correlator: which write each occurrence becomes (client-go's aggregation and
spam filter), with the time passed in as numbers."""

from __future__ import annotations

import re

import pytest

from controller.event_correlator import MAX_EVENT_NAME, EventCorrelator, EventKey, event_name

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
REF = ("ExternalSource", "apps", "flags", "uid-1")


def key(message: str = "boom", ref: tuple[str, str, str, str] = REF) -> EventKey:
    return (ref, "Warning", "FetchFailed", message)


def test_a_short_name_keeps_the_object_name_and_gets_a_unique_suffix() -> None:
    names = {event_name("flags") for _ in range(100)}
    assert len(names) == 100
    assert all(re.fullmatch(r"flags\.[0-9a-f]{16}", n) for n in names)


@pytest.mark.parametrize(
    "object_name",
    [
        "a" * 236,
        "a" * 253,
        ("a" * 61 + ".") * 4 + "bcdef",  # 253, dotted
        "a" * 235 + "." + "b" * 17,  # the cut falls right after a dot
        "a" * 234 + "-." + "b" * 17,  # ... after a dash and a dot
    ],
)
def test_a_long_object_name_is_cut_to_fit_253_characters(object_name: str) -> None:
    name = event_name(object_name)
    assert len(name) <= MAX_EVENT_NAME
    assert DNS_SUBDOMAIN.match(name), name
    assert name.startswith(object_name[:234])


def test_repeats_within_the_window_patch_one_event_with_the_count() -> None:
    correlator = EventCorrelator()
    writes = [
        correlator.observe(key(), object_name="flags", timestamp=f"t{i}", now=60.0 * i)
        for i in range(5)
    ]
    assert all(w is not None for w in writes)
    first = writes[0]
    assert first is not None
    assert first.create
    first.observation.exists = True  # the sender does this once the create succeeded
    last = writes[-1]
    assert last is not None
    assert not last.create
    assert last.observation is first.observation
    assert (last.observation.count, last.observation.first_timestamp) == (5, "t0")
    assert last.observation.last_timestamp == "t4"


def test_a_different_message_is_a_different_event() -> None:
    correlator = EventCorrelator()
    a = correlator.observe(key("a"), object_name="flags", timestamp="t", now=0.0)
    b = correlator.observe(key("b"), object_name="flags", timestamp="t", now=0.0)
    assert a is not None
    assert b is not None
    assert a.observation.name != b.observation.name
    assert a.observation.count == b.observation.count == 1


def test_a_repeat_after_the_window_starts_a_new_event() -> None:
    correlator = EventCorrelator(window=600.0)
    first = correlator.observe(key(), object_name="flags", timestamp="t0", now=0.0)
    assert first is not None
    first.observation.exists = True
    later = correlator.observe(key(), object_name="flags", timestamp="t1", now=601.0)
    assert later is not None
    assert later.create
    assert later.observation.count == 1
    assert later.observation.name != first.observation.name


def test_the_spam_filter_lets_a_burst_through_then_one_write_per_refill() -> None:
    correlator = EventCorrelator(burst=25, refill_seconds=300.0)

    def allowed(messages: range, now: float) -> int:
        results = [
            correlator.observe(key(f"m{i}"), object_name="flags", timestamp="t", now=now)
            for i in messages
        ]
        return sum(r is not None for r in results)

    assert allowed(range(40), now=0.0) == 25
    assert allowed(range(40, 50), now=299.0) == 0
    assert allowed(range(50, 60), now=300.0) == 1
    assert allowed(range(60, 70), now=900.0) == 2
    other = ("ExternalSource", "apps", "other", "uid-2")
    assert correlator.observe(key(ref=other), object_name="other", timestamp="t", now=900.0)


def test_a_filtered_repeat_still_counts_in_the_next_write() -> None:
    correlator = EventCorrelator(burst=1, refill_seconds=300.0)
    first = correlator.observe(key(), object_name="flags", timestamp="t0", now=0.0)
    assert first is not None
    first.observation.exists = True
    assert correlator.observe(key(), object_name="flags", timestamp="t1", now=1.0) is None
    assert correlator.observe(key(), object_name="flags", timestamp="t2", now=2.0) is None
    third = correlator.observe(key(), object_name="flags", timestamp="t3", now=300.0)
    assert third is not None
    assert not third.create
    assert third.observation.count == 4


def test_forget_drops_the_object_s_events_and_spam_budget() -> None:
    correlator = EventCorrelator(burst=1)
    assert correlator.observe(key("a"), object_name="flags", timestamp="t", now=0.0)
    assert correlator.observe(key("b"), object_name="flags", timestamp="t", now=0.0) is None
    correlator.forget(REF)
    assert len(correlator) == 0
    again = correlator.observe(key("a"), object_name="flags", timestamp="t", now=0.0)
    assert again is not None
    assert again.create


def test_memory_is_bounded_by_max_entries() -> None:
    correlator = EventCorrelator(max_entries=100)
    for i in range(1000):
        ref = ("ExternalSource", "apps", f"s{i}", f"uid-{i}")
        correlator.observe(key(ref=ref), object_name=f"s{i}", timestamp="t", now=float(i))
    assert len(correlator) == 100


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        EventCorrelator(burst=0)
