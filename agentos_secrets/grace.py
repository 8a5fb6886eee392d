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
"""

from __future__ import annotations

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

__all__ = ["GraceWindow", "Match", "as_bytes", "match"]

_MAX_KEPT = 8


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
