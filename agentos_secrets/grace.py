"""The grace window: which values ``Loader.verify`` accepts, and how it compares them.

During a rotation the two ends of a connection disagree for a while: the sender already
has the new token and the receiver still the old one, or the other way round. A
receiver therefore accepts, besides its current value, the values that a rotation it saw
replaced, for ``grace`` seconds after the rotation (the model is Django's
``SECRET_KEY_FALLBACKS`` and AWS Secrets Manager's ``AWSPREVIOUS`` label).

Comparison is constant-time and never short-circuits: the presented value and each
accepted value are first hashed (SHA-256, so neither the length nor a common prefix
shows in the timing), then *every* candidate is compared with
``hmac.compare_digest`` before the result is chosen.

:class:`VerifyCounts` counts the answers, per name and result (``current``,
``previous``, ``none``), and when a ``previous`` value last matched: during a rotation
that is how an operator sees the last caller still sending the old value
(``agentos_secrets.prometheus`` exposes them).
"""

from __future__ import annotations

import time
from _thread import allocate_lock  # threading.Lock without importing threading

from .secret import Secret

# hashlib/hmac load OpenSSL and typing is slow to import: ``import agentos_secrets`` must
# stay cheap, so they load where used (or only for type checkers).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Literal

    #: What ``Loader.verify`` returns when a presented value is accepted.
    Match = Literal["current", "previous"]
else:
    Match = str

__all__ = ["RESULTS", "GraceWindow", "Match", "VerifyCounts", "as_bytes", "match"]

_MAX_KEPT = 8

#: The ``result`` label values of the verify counters, in the order they are kept.
RESULTS = ("current", "previous", "none")
_RESULT_INDEX: dict[str | None, int] = {"current": 0, "previous": 1, None: 2}

#: Names counted by one Loader at most; verify() of a further name is not counted.
MAX_COUNTED_NAMES = 1000


def as_bytes(presented: object) -> bytes:
    """The bytes of a presented value: ``str`` (UTF-8), ``bytes`` or :class:`Secret`."""
    if isinstance(presented, Secret):
        return presented.reveal_bytes()
    if isinstance(presented, str):
        # surrogatepass never fails (a raised UnicodeEncodeError would quote a character)
        # and yields bytes that are not UTF-8, so they can never match a secret.
        return presented.encode("utf-8", "surrogatepass")
    if isinstance(presented, bytes | bytearray | memoryview):
        return bytes(presented)
    # The type only: the object itself might print its content.
    raise TypeError(
        f"presented value must be str, bytes or Secret, not {type(presented).__name__}"
    )


def match(presented: bytes, candidates: Sequence[tuple[Match, Secret]]) -> Match | None:
    """The label of the first candidate equal to ``presented``, comparing all of them.

    Every candidate is hashed and compared whatever the outcome of the others, so the
    time taken depends on the number of candidates only.
    """
    import hashlib
    import hmac

    presented_digest = hashlib.sha256(presented).digest()
    outcomes = [
        hmac.compare_digest(presented_digest, hashlib.sha256(secret.reveal_bytes()).digest())
        for _, secret in candidates
    ]
    result: Match | None = None
    for (label, _), equal in zip(candidates, outcomes, strict=True):
        if equal and result is None:
            result = label
    return result


class GraceWindow:
    """Values replaced by a rotation, each accepted for ``grace`` seconds after it.

    ``clock`` is a monotonic clock in seconds (injectable so tests need not sleep). At
    most eight replaced values are kept per name: a flapping secret cannot grow memory.
    Thread-safe.
    """

    def __init__(self, grace: float, clock: Callable[[], float]) -> None:
        if grace < 0:
            raise ValueError("grace must be zero or positive (seconds)")
        self.grace = float(grace)
        self._clock = clock
        self._replaced: dict[str, list[tuple[float, Secret]]] = {}
        self._lock = allocate_lock()

    def record(self, name: str, old: Secret) -> None:
        """Remember that a rotation of ``name`` replaced ``old`` just now."""
        if self.grace == 0:
            return
        now = self._clock()
        with self._lock:
            kept = self._replaced.setdefault(name, [])
            kept.append((now + self.grace, old))
            del kept[:-_MAX_KEPT]

    def previous(self, name: str) -> list[Secret]:
        """The replaced values of ``name`` still inside the window, newest first."""
        now = self._clock()
        with self._lock:
            kept = self._replaced.get(name)
            if not kept:
                return []
            alive = [(until, secret) for until, secret in kept if until > now]
            if alive:
                self._replaced[name] = alive
            else:
                del self._replaced[name]
            return [secret for _, secret in reversed(alive)]

    def count(self, name: str) -> int:
        """How many replaced values of ``name`` are still accepted (for ``explain``)."""
        return len(self.previous(name))


class VerifyCounts:
    """How often ``verify`` answered ``current``, ``previous`` or none, per name.

    Also the wall-clock time (``time.time()``) of the last ``previous`` answer per name.
    Names only, never values; at most ``MAX_COUNTED_NAMES`` names (the name is the
    application's, but memory stays bounded whatever it passes).

    Thread-safe: one lock guards the counts (an uncontended acquire and release cost
    about a tenth of a microsecond, a few percent of one ``verify``; ``python -m
    benchmarks loader``). Counting without it, on ``itertools.count`` objects read back
    through their ``repr``, relied on the GIL making ``next()`` atomic (not so on a
    free-threaded build) and on the text of a ``repr``.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[str, list[int]] = {}
        self._last_previous: dict[str, float] = {}
        self._clock = wall_clock
        self._lock = allocate_lock()

    def record(self, name: str, result: Match | None) -> None:
        """Count one answer of ``verify(name, ...)``."""
        index = _RESULT_INDEX[result]
        with self._lock:
            row = self._rows.get(name)
            if row is None:
                if len(self._rows) >= MAX_COUNTED_NAMES:
                    return
                row = self._rows[name] = [0, 0, 0]
            row[index] += 1
            if index == 1:
                self._last_previous[name] = self._clock()

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(name, result): count}``: every result of every name verified so far."""
        with self._lock:
            return {
                (name, result): value
                for name, row in self._rows.items()
                for result, value in zip(RESULTS, row, strict=True)
            }

    def last_previous(self) -> dict[str, float]:
        """``{name: unix time}`` of the last ``previous`` answer, for names that had one."""
        with self._lock:
            return dict(self._last_previous)
