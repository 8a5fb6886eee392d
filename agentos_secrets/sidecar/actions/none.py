"""``--action none``: watch and report only, for apps that read through the Loader per use.

An app that calls ``Loader.get()`` on every use (the Loader re-reads a file whose
identity changed) takes up a rotated value by itself: there is nothing to trigger, and
what is mounted *is* what is applied. The loop recognises ``passive`` and marks every
confirmed change applied at once, without coalescing, storm breaker or retries, so
``GET /status`` reports ``applied == mounted`` and ``agentos-secrets rotate`` can gate
on it.
"""

from __future__ import annotations

__all__ = ["NoAction"]


class NoAction:
    kind = "none"
    uses_fingerprint = False
    #: The loop marks a change applied when it is confirmed; :meth:`apply` never runs.
    passive = True

    def ready(self) -> str | None:
        return None

    def apply(self, fingerprint: str) -> None:
        return None

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return "NoAction()"
