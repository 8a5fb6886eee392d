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
    from typing import Any

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

    # The levels the library uses are plain methods: ``logger.debug`` runs on every cold
    # lookup, and going through ``__getattr__`` would double its cost. ``stacklevel`` is
    # raised by one so that records still point at the caller, not at this module.
    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        real = self._real or self._get()
        if real.isEnabledFor(10):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            real.debug(msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        real = self._real or self._get()
        if real.isEnabledFor(20):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            real.info(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        real = self._real or self._get()
        if real.isEnabledFor(30):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            real.warning(msg, *args, **kwargs)

    def __getattr__(self, attr: str) -> object:
        return getattr(self._get(), attr)

    def __repr__(self) -> str:
        return f"<lazy logger {LOGGER_NAME!r}>"


#: Use like a ``logging.Logger``: ``logger.warning("secret %s: ...", name)``.
logger: logging.Logger = _LazyLogger()  # type: ignore[assignment]
