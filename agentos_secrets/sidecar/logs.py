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
from typing import Any

__all__ = ["JsonFormatter", "RedactingFilter", "TextFormatter", "redact", "redact_url", "setup"]

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


def setup(log_format: str = "json", level: str = "INFO") -> logging.Handler:
    """Send every log record of the process to stderr, redacted, in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
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
    return handler
