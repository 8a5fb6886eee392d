"""Coalescer, storm breaker and backoff: pure state machines driven by a fake clock."""

from __future__ import annotations

import pytest

from agentos_secrets.sidecar.coalesce import HOUR, Coalescer, StormBreaker
from agentos_secrets.sidecar.retry import Backoff


def test_coalescer_waits_for_quiet():
    c = Coalescer(debounce=1.0, max_wait=10.0)
    assert c.due() is None and not c.take(0.0)
    c.notice(100.0)
    c.notice(100.5)  # three keys changed 0.5 s apart ...
    c.notice(101.0)
    assert c.due() == 102.0
    assert not c.take(101.9)
    assert c.take(102.0)  # ... give one firing
    assert not c.pending and c.due() is None


def test_coalescer_max_wait_bounds_a_constant_stream():
    c = Coalescer(debounce=1.0, max_wait=10.0)
    t = 0.0
    fired = []
    while t < 25.0:
        c.notice(t)
        if c.take(t):
            fired.append(t)
        t += 0.1
    assert len(fired) == 2
    assert fired[0] == pytest.approx(10.0, abs=0.11)


def test_coalescer_zero_debounce_fires_at_once():
    c = Coalescer(debounce=0.0, max_wait=0.0)
    c.notice(5.0)
    assert c.take(5.0)


def test_coalescer_rejects_bad_bounds():
    with pytest.raises(ValueError):
        Coalescer(debounce=2.0, max_wait=1.0)


def test_breaker_min_interval():
    b = StormBreaker(min_interval=10.0, max_per_hour=12)
    assert b.next_allowed(0.0) == 0.0
    b.record(0.0)
    assert b.next_allowed(3.0) == 10.0
    assert b.next_allowed(12.0) == 12.0


def test_breaker_max_per_hour_slides():
    b = StormBreaker(min_interval=0.0, max_per_hour=3)
    for t in (0.0, 100.0, 200.0):
        assert b.next_allowed(t) == t
        b.record(t)
    assert b.next_allowed(300.0) == HOUR  # the oldest must leave the window
    assert b.actions_last_hour(300.0) == 3
    assert b.next_allowed(HOUR + 1) == HOUR + 1


def test_storm_of_100_rotations_in_10s_gives_at_most_two_actions_with_defaults():
    c = Coalescer(debounce=1.0, max_wait=10.0)
    b = StormBreaker(min_interval=10.0, max_per_hour=12)
    actions = []
    pending = False
    t = 0.0
    while t < 60.0:
        if t < 10.0:
            c.notice(t)
        if c.take(t):
            pending = True
        if pending and b.next_allowed(t) <= t:
            b.record(t)
            actions.append(t)
            pending = False
        t = round(t + 0.1, 1)
    assert 1 <= len(actions) <= 2


def test_backoff_grows_jittered_and_capped():
    low = Backoff(1.0, 60.0, rng=lambda: 0.0)
    high = Backoff(1.0, 60.0, rng=lambda: 0.999999)
    lows = [low.next_delay() for _ in range(10)]
    highs = [high.next_delay() for _ in range(10)]
    assert lows[:4] == [1.0, 1.0, 2.0, 4.0]
    assert highs[:3] == pytest.approx([1.0, 2.0, 4.0], rel=1e-5)
    assert max(highs) <= 60.0 and highs[-1] == pytest.approx(60.0, rel=1e-5)
    assert all(a <= b for a, b in zip(lows, highs, strict=True))
    high.reset()
    assert high.next_delay() == pytest.approx(1.0, rel=1e-5)


def test_backoff_slowest_is_the_maximum():
    b = Backoff(1.0, 60.0)
    assert b.slowest() == 60.0
    assert b.failures == 1
