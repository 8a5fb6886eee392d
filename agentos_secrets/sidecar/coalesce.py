"""Coalescing and the storm breaker: pure state machines over an injected clock.

Both take ``now`` (seconds, monotonic) as an argument instead of reading a clock, so the
tests drive them through hours of simulated time in microseconds and the loop decides
when to wake up from :meth:`Coalescer.due` and :meth:`StormBreaker.next_allowed`.

Why each exists:

* :class:`Coalescer`: a rotation of several keys, or of several watched Secrets, must
  give *one* action (Stakater Reloader issues 508 and 110). Confirmed changes feed one
  pending change that fires after a quiet period (``--debounce``), but never later than
  ``--max-wait`` after the first change, so a constantly changing volume still acts.
* :class:`StormBreaker`: a flapping Secret must not restart an app thousands of times
  (Reloader issue 1183: 80,000 ReplicaSets). Actions are at least ``--min-interval``
  apart and at most ``--max-per-hour`` per sliding hour. When it trips the change is
  *held*, not dropped: the loop applies the newest content when allowed.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Coalescer", "StormBreaker"]

HOUR = 3600.0


class Coalescer:
    """One pending change: fires ``debounce`` after the last change, ``max_wait`` at most."""

    def __init__(self, debounce: float, max_wait: float) -> None:
        if debounce < 0 or max_wait < debounce:
            raise ValueError("need 0 <= debounce <= max_wait")
        self.debounce = debounce
        self.max_wait = max_wait
        self._first: float | None = None
        self._last: float | None = None

    @property
    def pending(self) -> bool:
        return self._first is not None

    @property
    def first_change(self) -> float | None:
        """When the pending change was first seen (for the latency histogram)."""
        return self._first

    def notice(self, now: float) -> None:
        """A confirmed content change happened at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    def due(self) -> float | None:
        """When the pending change fires, or None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.debounce, self._first + self.max_wait)

    def take(self, now: float) -> bool:
        """True (and reset) when the pending change is due at ``now``."""
        due = self.due()
        if due is None or now < due:
            return False
        self._first = self._last = None
        return True


class StormBreaker:
    """Allow an action only ``min_interval`` after the last and below ``max_per_hour``."""

    def __init__(self, min_interval: float, max_per_hour: int) -> None:
        if min_interval < 0 or max_per_hour < 1:
            raise ValueError("need min_interval >= 0 and max_per_hour >= 1")
        self.min_interval = min_interval
        self.max_per_hour = max_per_hour
        self._starts: deque[float] = deque()

    def next_allowed(self, now: float) -> float:
        """The earliest time an action may start: ``now`` when allowed right away."""
        while self._starts and self._starts[0] <= now - HOUR:
            self._starts.popleft()
        allowed = now
        if self._starts:
            allowed = max(allowed, self._starts[-1] + self.min_interval)
        if len(self._starts) >= self.max_per_hour:
            # The oldest start within the hour must leave the window first.
            allowed = max(allowed, self._starts[len(self._starts) - self.max_per_hour] + HOUR)
        return allowed

    def record(self, now: float) -> None:
        """An action for new content started at ``now``."""
        self._starts.append(now)

    def actions_last_hour(self, now: float) -> int:
        return sum(1 for t in self._starts if t > now - HOUR)
