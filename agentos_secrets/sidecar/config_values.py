"""The flag table's limits and the value validators of the sidecar's configuration.

Each flag's bounds (seconds ranges, counts, lengths, enums, which flags are paths) and
the checks that turn a text value into a typed one or refuse it with a
:class:`~.config_model.ConfigError` naming the flag and its variable, never the value
(it may be a secret typed where its path belongs). Also the checks across flags of a
built :class:`~.config_model.Config` (what each action needs, ``--listen``). Kept apart
from the parser so the rules can be read, and tested, as one table.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re

from .config_model import ACTIONS, Config, ConfigError, _flag, _where

__all__ = ["MAX_HEADER_FILES", "MAX_VALUE_CHARS", "MAX_WATCH"]

#: Seconds flags: (lowest, lowest allowed itself, highest). Every value must be a finite
#: number in range: ``inf`` would make the loop's ``Condition.wait`` overflow, ``1e308``
#: too, and a resync of ``1e-300`` seconds would spin a core re-hashing.
_SECONDS: dict[str, tuple[float, bool, float]] = {
    "debounce": (0.0, True, 3600.0),
    "max_wait": (0.0, True, 86400.0),
    "min_interval": (0.0, True, 86400.0),
    "resync": (0.05, True, 86400.0),
    "backoff_initial": (0.001, True, 3600.0),
    "backoff_max": (0.001, True, 86400.0),
    "timeout": (0.01, True, 3600.0),
    "grace_period": (0.01, True, 3600.0),
    "shutdown_timeout": (0.5, True, 3600.0),
}
_MAX_PER_HOUR = 1_000_000
#: At most this many ``--watch`` paths (each holds an inotify watch and a thread) and
#: ``--header-file`` headers.
MAX_WATCH = 64
MAX_HEADER_FILES = 16
#: The longest value any flag or variable may hold (a command line, a URL, a path).
MAX_VALUE_CHARS = 8192
_ENUMS = {
    "action": ACTIONS,
    "log_format": ("json", "text"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}
#: Flags whose value is a file or directory path: it must be absolute. A relative value
#: is refused without being shown (it is most often a secret typed where its path
#: belongs; echoing it, or its ``abspath``, would log the secret).
_PATH_FLAGS = ("hmac_key_file", "target_pidfile", "token_file", "ca_file", "state_file")
_NOT_SHOWN = "(the value is not shown, in case it is a secret)"
_URL_RE = re.compile(r"https?://[^/\s\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*", re.IGNORECASE)


def _seconds(name: str, raw: str) -> float:
    """A finite number of seconds within the flag's range; never echoes ``raw``."""
    flag = _flag(name)
    low, _, high = _SECONDS[name]
    text = raw.strip()
    try:
        value = float(text) if len(text) <= 64 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{_where(flag)}: not a finite number of seconds {_NOT_SHOWN}")
    if not low <= value <= high or (value == 0 and name in _MUST_BE_POSITIVE):
        raise ConfigError(f"{_where(flag)}: must be between {low:g} and {high:g} seconds")
    return value


_MUST_BE_POSITIVE = {n for n, (low, _, _h) in _SECONDS.items() if low > 0}


def _count(flag: str, raw: str, low: int, high: int) -> int:
    text = raw.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise ConfigError(f"{_where(flag)}: not a whole number {_NOT_SHOWN}")
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(f"{_where(flag)}: must be between {low} and {high}")
    return value


def _enum(name: str, raw: str) -> str:
    flag = _flag(name)
    choices = _ENUMS[name]
    text = raw.strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise ConfigError(f"{_where(flag)}: must be one of {', '.join(choices)} {_NOT_SHOWN}")


def _absolute(flag: str, raw: str) -> str:
    """``raw`` as an absolute, normalised path; a relative one is refused, not shown."""
    if not raw.startswith("/"):
        raise ConfigError(
            f"{_where(flag)}: is not an absolute path {_NOT_SHOWN}; give the absolute path"
        )
    return os.path.normpath(raw)


def _check_length(ns: argparse.Namespace) -> None:
    for name, value in vars(ns).items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
                raise ConfigError(
                    f"{_where(_flag(name))}: longer than {MAX_VALUE_CHARS} characters"
                )


def listen_is_valid(listen: str) -> bool:
    """``HOST:PORT`` with an IP literal (``[::]`` for IPv6), ``localhost`` or no host.

    ``check`` (AS212) calls this too, so it refuses exactly what the sidecar refuses.
    """
    host, sep, port = listen.rpartition(":")
    ok = bool(sep) and re.fullmatch(r"[0-9]{1,5}", port) is not None and int(port) <= 65535
    if ok:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if bare not in ("", "localhost"):
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                ok = False
    return ok


def _check_listen(listen: str) -> None:
    if not listen_is_valid(listen):
        raise ConfigError(
            f"{_where('--listen')}: expected HOST:PORT with an IP address (e.g. 0.0.0.0:9095"
            f" or [::]:9095) {_NOT_SHOWN}"
        )


def _check_action(config: Config) -> None:
    if config.action == "http":
        if not config.url:
            raise ConfigError(f"{_where('--url')}: required with --action http")
        if not _URL_RE.fullmatch(config.url):
            raise ConfigError(
                f"{_where('--url')}: must be an http:// or https:// URL without spaces or"
                f" control characters {_NOT_SHOWN}"
            )
        if not re.fullmatch(r"[A-Z]{1,20}", config.method):
            raise ConfigError(f"{_where('--method')}: not an HTTP method {_NOT_SHOWN}")
    elif config.action in ("signal", "restart"):
        if config.action == "signal":
            from .actions.process import parse_signal

            try:
                parse_signal(config.signal)
            except ValueError:
                raise ConfigError(
                    f"{_where('--signal')}: not a signal name or number {_NOT_SHOWN}"
                ) from None
        given = [f for f in ("target_name", "target_cmdline", "target_pidfile")
                 if getattr(config, f)]
        if len(given) != 1:
            raise ConfigError(
                f"--action {config.action} needs exactly one of --target-name,"
                " --target-cmdline, --target-pidfile (AGENTOS_SIDECAR_TARGET_NAME, ...)"
            )
        if config.target_cmdline:
            problem: str | None = None
            try:
                re.compile(config.target_cmdline)
            except re.error as exc:
                problem = f"{exc.msg} at position {exc.pos}"
            if problem is not None:
                # Raised outside the except block: re.error keeps the whole pattern
                # (``.pattern``), which may be a secret typed into the wrong variable.
                raise ConfigError(f"{_where('--target-cmdline')}: bad pattern ({problem})")
    elif config.action == "exec" and not config.exec_argv:
        raise ConfigError(f"{_where('--exec')}: required with --action exec")
