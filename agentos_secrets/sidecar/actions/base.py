"""The contract every action implements.

The sidecar's loop calls ``ready()`` until it returns None, then ``apply(fingerprint)``
once per coalesced change. ``apply`` returns normally on success and raises
:class:`ActionError` on failure; ``retryable`` tells the loop whether to back off and
retry soon (connection errors, timeouts, 429, 5xx) or to treat it as a configuration
error (other 4xx: logged, counted, retried only at the slowest pace). The newest
fingerprint always wins: the loop never applies an older one after a newer one.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Action", "ActionError"]


class ActionError(Exception):
    """An action failed. The message must never contain a secret or a credential."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Action(Protocol):
    #: ``http``, ``signal``, ``restart``, ``rollout`` or ``exec`` (a metric label).
    kind: str

    def ready(self) -> str | None:
        """None when the action can run; otherwise why not (shown by ``/readyz``)."""

    def apply(self, fingerprint: str) -> None:
        """Make the app use the content whose fingerprint is ``fingerprint``."""

    def close(self) -> None:
        """Release clients and handles."""
