"""The sidecar's configuration: command-line flags, each also read from the environment.

Every flag ``--some-flag`` is also read from ``AGENTOS_SIDECAR_SOME_FLAG`` (repeatable
flags: comma-separated), so manifests can configure the sidecar with ``env:`` alone.
Flags on the command line win over the environment (docs/contracts.md). A bad value is a
:class:`ConfigError` that names the flag *and* its variable, never a secret: no secret is
ever passed as a flag, only paths to files holding one.

:func:`parse` is here; the pieces it puts together are in their own modules:
``config_model`` (:class:`Config`, :class:`ConfigError`, :class:`StatusRanges`,
``env_var``), ``config_values`` (the flag table's limits and the value validators) and
``config_flags`` (the argparse parser and the environment merge). The names other
modules and tests import are re-exported here.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence

from ..booleans import BooleanSettingError, parse_bool
from .config_flags import _build_parser, _merge_env
from .config_model import (
    ACTIONS,
    DEFAULT_CA_FILE,
    DEFAULT_TOKEN_FILE,
    ENV_PREFIX,
    Config,
    ConfigError,
    StatusRanges,
    _flag,
    _where,
    env_var,
)
from .config_values import (
    _MAX_PER_HOUR,
    _NOT_SHOWN,
    _PATH_FLAGS,
    _SECONDS,
    MAX_HEADER_FILES,
    MAX_VALUE_CHARS,
    MAX_WATCH,
    _absolute,
    _check_action,
    _check_length,
    _check_listen,
    _count,
    _enum,
    _seconds,
)

__all__ = [
    "ACTIONS", "DEFAULT_CA_FILE", "DEFAULT_TOKEN_FILE", "ENV_PREFIX", "MAX_HEADER_FILES",
    "MAX_VALUE_CHARS", "MAX_WATCH", "Config", "ConfigError", "StatusRanges", "env_var",
    "parse",
]


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Config:
    """Parse flags and environment into a :class:`Config`; ``ConfigError`` when unusable.

    ``--help`` exits through ``SystemExit`` as usual; every other problem, argparse's
    own included, is a ``ConfigError`` that names the flag and never quotes its value.
    """
    env = os.environ if env is None else env
    parser = _build_parser()
    ns, extra = parser.parse_known_args(list(argv))
    if extra:
        # Show flag names only: a stray word may be a secret meant for a variable.
        shown = sorted({e.split("=", 1)[0] for e in extra if e.startswith("--")})
        raise ConfigError(
            "unrecognized arguments: "
            + (", ".join(shown) + "; " if shown else "")
            + f"{len(extra)} in all {_NOT_SHOWN} (see --help)"
        )
    _merge_env(ns, parser, env)
    _check_length(ns)

    if len(ns.watch or []) > MAX_WATCH:
        raise ConfigError(f"{_where('--watch')}: at most {MAX_WATCH} paths")
    watch = tuple(dict.fromkeys(_absolute("--watch", w) for w in (ns.watch or [])))
    if not watch:
        raise ConfigError(f"{_where('--watch')}: give at least one directory to watch")
    action = _enum("action", ns.action) if ns.action is not None else "http"
    kw: dict[str, object] = {"watch": watch, "action": action}

    for name in _SECONDS:
        raw = getattr(ns, name)
        if raw is not None:
            kw[name] = _seconds(name, raw)
    if ns.max_per_hour is not None:
        kw["max_per_hour"] = _count("--max-per-hour", ns.max_per_hour, 1, _MAX_PER_HOUR)
    if kw.get("max_wait", 10.0) < kw.get("debounce", 1.0):  # type: ignore[operator]
        raise ConfigError(f"{_where('--max-wait')}: must not be shorter than --debounce")
    if kw.get("backoff_max", 60.0) < kw.get("backoff_initial", 1.0):  # type: ignore[operator]
        raise ConfigError(f"{_where('--backoff-max')}: must not be shorter than --backoff-initial")

    for name in ("url", "method", "signal", "target_name", "target_cmdline",
                 "deployment", "namespace", "annotation", "api_server"):
        value = getattr(ns, name)
        if value is not None:
            kw[name] = value
    for name in _PATH_FLAGS:
        value = getattr(ns, name)
        if value is not None:
            kw[name] = _absolute(_flag(name), value)
    for name in ("log_format", "log_level"):
        value = getattr(ns, name)
        if value is not None:
            kw[name] = _enum(name, value)
    if ns.send_fingerprint is not None:
        try:
            kw["send_fingerprint"] = parse_bool(
                _where("--send-fingerprint"), ns.send_fingerprint, default=False
            )
        except BooleanSettingError as exc:
            raise ConfigError(str(exc)) from None
    if ns.listen is not None:
        kw["listen"] = None if ns.listen.strip().lower() in ("", "off", "none") else ns.listen
    if ns.expect_status is not None:
        try:
            kw["expect_status"] = StatusRanges(ns.expect_status)
        except ValueError:
            raise ConfigError(
                f"{_where('--expect-status')}: not a list of statuses or ranges like"
                f" 200-299,304 {_NOT_SHOWN}"
            ) from None
    headers: list[tuple[str, str]] = []
    if len(ns.header_file or []) > MAX_HEADER_FILES:
        raise ConfigError(f"{_where('--header-file')}: at most {MAX_HEADER_FILES} headers")
    for item in ns.header_file or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name) or not path:
            raise ConfigError(f"{_where('--header-file')}: expected NAME=PATH {_NOT_SHOWN}")
        headers.append((name, _absolute(f"--header-file {name}", path)))
    kw["header_files"] = tuple(headers)
    if ns.exec_cmd is not None:
        try:
            kw["exec_argv"] = tuple(shlex.split(ns.exec_cmd))
        except ValueError as exc:
            raise ConfigError(f"{_where('--exec')}: cannot split the command ({exc})") from None

    config = Config(**kw)  # type: ignore[arg-type]
    _check_action(config)
    if config.listen:
        _check_listen(config.listen)
    return config
