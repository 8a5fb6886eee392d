"""Logging for the sidecar: JSON lines by default, ``--log-format text`` for people.

Every record passes through :func:`redact` whatever its origin (our code, httpx,
watchdog): credentials in URLs (``user:pass@``) and query strings become ``***``. The
sidecar itself never logs a value or a raw hash: it logs names, paths, fingerprints
(``fp1:``, slow and salted) and error codes. Structured fields go in
``extra={"fields": {...}}`` and become JSON keys.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "guess_format",
    "redact",
    "redact_url",
    "setup",
]

LOGGER_NAME = "agentos_secrets.sidecar"

# Greedy up to the *last* ``@`` of the authority: URL parsers (httpx, urllib) split the
# userinfo there, so a password holding a raw ``@`` (``user:p@ss@host``) is redacted whole.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")
_QUERY_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#]*)\?[^\s#\"']*")


def redact_url(url: str) -> str:
    """``https://user:pw@host/p?token=x`` -> ``https://***@host/p?***``."""
    return redact(url)


def redact(text: str) -> str:
    """Remove URL credentials (userinfo) and query strings from ``text``."""
    if "://" not in text:
        return text
    text = _USERINFO_RE.sub(r"\1***@", text)
    return _QUERY_RE.sub(r"\1?***", text)


class RedactingFilter(logging.Filter):
    """Render the message once, redacted, so neither formatter can see the raw one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {
                k: redact(v) if isinstance(v, str) else v for k, v in fields.items()
            }
        return True


def _exception_summary(record: logging.LogRecord) -> str | None:
    # Only the type: an exception's text may quote a value (a provider, a command).
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        error = _exception_summary(record)
        if error:
            entry["exception"] = error
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-11-26T14:02:11Z warning msg key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        line = f"{ts} {record.levelname.lower():<7} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        error = _exception_summary(record)
        if error:
            line += f" exception={error}"
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failures stay one JSON line (logging's default prints a
    ``--- Logging error ---`` traceback, with the record's arguments, to stderr)."""

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write('{"level": "error", "logger": "agentos_secrets.sidecar",'
                              ' "msg": "a log record could not be written"}\n')
            self.flush()
        except Exception:  # noqa: BLE001, S110 - nothing else may reach stderr
            pass


def _log_uncaught(where: str, exc_type: type[BaseException] | None,
                  exc: BaseException | None, tb: object) -> None:
    # Only the type reaches the line (the formatters drop the text): an exception's
    # message may quote a value.
    logging.getLogger(LOGGER_NAME).error(
        "uncaught exception in %s", where,
        exc_info=(exc_type, exc, tb) if exc_type is not None else None,  # type: ignore[arg-type]
    )


def _install_hooks() -> None:
    """Route every other way Python writes to stderr through the logger.

    Threads (``threading.excepthook``: a client resetting a connection used to print a
    raw traceback per thread), the main thread (``sys.excepthook``), unraisable
    exceptions in ``__del__`` and finalizers (``sys.unraisablehook``) and warnings
    (``logging.captureWarnings``).
    """
    import threading

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        _log_uncaught(f"thread {name}", args.exc_type, args.exc_value, args.exc_traceback)

    def main_hook(exc_type: type[BaseException], exc: BaseException, tb: object) -> None:
        _log_uncaught("the main thread", exc_type, exc, tb)

    def unraisable_hook(unraisable: Any) -> None:
        _log_uncaught("a finalizer", unraisable.exc_type, unraisable.exc_value,
                      unraisable.exc_traceback)

    threading.excepthook = thread_hook
    sys.excepthook = main_hook  # type: ignore[assignment]
    sys.unraisablehook = unraisable_hook
    logging.captureWarnings(True)


def guess_format(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The log format asked for, read leniently (for messages before the flags parse):
    ``text`` only when ``--log-format`` (or its variable) clearly says so, else ``json``."""
    chosen = env.get("AGENTOS_SIDECAR_LOG_FORMAT", "")
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--log-format" and i + 1 < len(args):
            chosen = args[i + 1]
        elif arg.startswith("--log-format="):
            chosen = arg.split("=", 1)[1]
    return "text" if chosen.strip().lower() == "text" else "json"


def setup(log_format: str = "json", level: str = "INFO") -> logging.Handler:
    """Send every log record of the process to stderr, redacted, in ``log_format``.

    Also routes uncaught exceptions (any thread), unraisable exceptions and warnings
    through it, so with ``json`` every line on stderr is one JSON object.
    """
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO; our own lines already say what happened.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    _install_hooks()
    return handler
