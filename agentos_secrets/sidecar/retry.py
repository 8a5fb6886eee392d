"""Jittered exponential backoff for failed actions.

The delay doubles from ``initial`` up to ``maximum`` (1 s to 60 s by default), and each
delay is drawn uniformly from [delay/2, delay] ("equal jitter", never below ``initial``):
many sidecars failing against the same endpoint spread out instead of retrying in
lockstep, and the delay never collapses to zero (the self-inflicted load of Vault issue
12566). A configuration error (a 4xx other than 429) is retried only at ``maximum``: it
will not fix itself soon, but the configuration may be fixed without restarting the
sidecar, so it is never given up.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delays for consecutive failures; :meth:`reset` after a success."""

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt after one more failure."""
        ceiling = min(self.maximum, self.initial * (2.0 ** min(self.failures, 62)))
        self.failures += 1
        return max(self.initial, ceiling / 2 + self._rng() * ceiling / 2)

    def slowest(self) -> float:
        """The pace for configuration errors: the maximum delay, no jitter below it."""
        self.failures += 1
        return self.maximum

    def reset(self) -> None:
        self.failures = 0
