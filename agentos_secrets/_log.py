"""The ``agentos_secrets`` logger, created on first use.

``import logging`` pulls in ``re``, ``traceback``, ``string``, ``threading`` and more:
several milliseconds that ``import agentos_secrets`` must not pay (the budget is 20 ms over
a bare interpreter). Modules log through :data:`logger`, which imports ``logging`` and
fetches the real logger the first time a method is looked up, then forwards to it.
Handlers and levels set by the application on ``logging.getLogger("agentos_secrets")``
apply unchanged: it is the same logger.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

__all__ = ["LOGGER_NAME", "logger"]

LOGGER_NAME = "agentos_secrets"


class _LazyLogger:
    """Forwards attribute access to ``logging.getLogger(LOGGER_NAME)``, created lazily."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: logging.Logger | None = None

    def _get(self) -> logging.Logger:
        real = self._real
        if real is None:
            import logging

            real = self._real = logging.getLogger(LOGGER_NAME)
        return real

    def __getattr__(self, attr: str) -> object:
        return getattr(self._get(), attr)

    def __repr__(self) -> str:
        return f"<lazy logger {LOGGER_NAME!r}>"


#: Use like a ``logging.Logger``: ``logger.warning("secret %s: ...", name)``.
logger: logging.Logger = _LazyLogger()  # type: ignore[assignment]
