"""The sidecar's configuration: command-line flags, each also read from the environment.

Every flag ``--some-flag`` is also read from ``AGENTOS_SIDECAR_SOME_FLAG`` (repeatable
flags: comma-separated), so manifests can configure the sidecar with ``env:`` alone.
Flags on the command line win over the environment (docs/contracts.md). A bad value is a
:class:`ConfigError` that names the flag *and* its variable, never a secret: no secret is
ever passed as a flag, only paths to files holding one.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from ..booleans import BooleanSettingError, parse_bool

__all__ = ["ACTIONS", "Config", "ConfigError", "StatusRanges", "env_var", "parse"]

ACTIONS = ("http", "signal", "restart", "rollout", "exec", "none")
ENV_PREFIX = "AGENTOS_SIDECAR_"
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
DEFAULT_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


class ConfigError(ValueError):
    """The configuration cannot work; the message names the flag and its variable."""


def env_var(flag: str) -> str:
    """``--max-per-hour`` -> ``AGENTOS_SIDECAR_MAX_PER_HOUR``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def _where(flag: str) -> str:
    return f"{flag} ({env_var(flag)})"


class StatusRanges:
    """Expected HTTP statuses, e.g. ``200-299,304``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        ranges: list[tuple[int, int]] = []
        for part in spec.split(","):
            part = part.strip()
            match = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", part)
            if not match:
                raise ValueError(part)
            low = int(match.group(1))
            high = int(match.group(2) or low)
            if not 100 <= low <= high <= 599:
                raise ValueError(part)
            ranges.append((low, high))
        self.ranges = tuple(ranges)

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    def __repr__(self) -> str:
        return f"StatusRanges({self.spec!r})"


#: Free-text fields a repr must not show as given: a URL may carry credentials
#: (``user:pass@``, ``?token=``), a command line or a target pattern may hold a secret.
_REPR_HIDDEN = ("exec_argv", "target_name", "target_cmdline")
_REPR_REDACTED_URLS = ("url", "api_server")


@dataclass(frozen=True, repr=False)
class Config:
    """The validated configuration. Holds paths and names only, never secret content.

    Its repr shows URLs with credentials and query redacted and hides the free-text
    fields (``exec_argv``, ``target_name``, ``target_cmdline``): a config object ends up
    in tracebacks with locals and debug output.
    """

    watch: tuple[str, ...]
    action: str = "http"
    # http
    url: str | None = None
    method: str = "POST"
    expect_status: StatusRanges = field(default_factory=lambda: StatusRanges("200-299"))
    header_files: tuple[tuple[str, str], ...] = ()
    hmac_key_file: str | None = None
    timeout: float = 5.0
    send_fingerprint: bool = False
    # signal / restart
    signal: str = "HUP"
    target_name: str | None = None
    target_cmdline: str | None = None
    target_pidfile: str | None = None
    grace_period: float = 30.0
    # rollout
    deployment: str | None = None
    namespace: str | None = None
    annotation: str = "secrets.agentos.io/fingerprint"
    api_server: str = "https://kubernetes.default.svc"
    token_file: str = DEFAULT_TOKEN_FILE
    ca_file: str = DEFAULT_CA_FILE
    # exec
    exec_argv: tuple[str, ...] = ()
    # detection, coalescing, storm breaker
    debounce: float = 1.0
    max_wait: float = 10.0
    min_interval: float = 10.0
    max_per_hour: int = 12
    resync: float = 60.0
    # retries (test-friendly knobs; the defaults are the contract)
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # state, server, logs
    state_file: str | None = None
    listen: str | None = "0.0.0.0:9095"
    log_format: str = "json"
    log_level: str = "INFO"
    shutdown_timeout: float = 20.0

    def __repr__(self) -> str:
        from dataclasses import fields

        from .logs import redact_url

        shown: list[str] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in _REPR_HIDDEN and value:
                text = "'(given, not shown)'"
            elif item.name in _REPR_REDACTED_URLS and value:
                text = repr(redact_url(value))
            else:
                text = repr(value)
            shown.append(f"{item.name}={text}")
        return f"Config({', '.join(shown)})"

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


# -- the flag table ----------------------------------------------------------------------

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


class _Parser(argparse.ArgumentParser):
    """argparse whose errors never quote a value: they raise :class:`ConfigError`."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(_sanitize(message) + " (see --help)")


def _sanitize(message: str) -> str:
    """argparse's structural errors, with any quoted argument removed.

    ``ambiguous option: --t=VALUE could match ...`` quotes the whole argument, value
    included, and ``ignored explicit argument 'VALUE'`` the value: keep the flag only.
    Our flags carry no ``type``/``choices``, so argparse never judges a value itself.
    """
    ambiguous = re.match(r"ambiguous option: (-[^=\s]*)", message)
    if ambiguous:
        return f"ambiguous option: {ambiguous.group(1)} (give the whole flag name)"
    ignored = re.match(r"(argument [^:]+): ignored explicit argument", message)
    if ignored:
        return f"{ignored.group(1)}: takes no value"
    return re.sub(r"'[^']*'", "'...'", message)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="agentos-secrets sidecar",
        description="Watch mounted Secrets; on a real content change, make the app use it "
        "(HTTP reload, signal, restart, rollout or a command) exactly once, reliably, or "
        "(none) only report what is mounted for apps that read through the Loader per use. "
        f"Every flag is also read from {ENV_PREFIX}<FLAG> (repeatable flags: "
        "comma-separated); the command line wins. See sidecar/README.md.",
    )
    a = p.add_argument
    a("--watch", action="append", metavar="DIR",
      help="a mounted Secret directory, or a file watched through its directory (absolute;"
      f" repeatable, at most {MAX_WATCH})")
    a("--action", metavar="|".join(ACTIONS), help="what to do on a change (default: http)")
    g = p.add_argument_group("http")
    g.add_argument("--url", help="the reload endpoint")
    g.add_argument("--method", help="HTTP method (default: POST)")
    g.add_argument("--expect-status", metavar="RANGES",
                   help="accepted statuses, e.g. 200-299,304 (default: 200-299)")
    g.add_argument("--header-file", action="append", metavar="NAME=PATH",
                   help="a request header whose value is read from PATH (absolute) on every"
                   f" attempt (repeatable, at most {MAX_HEADER_FILES})")
    g.add_argument("--hmac-key-file", metavar="PATH",
                   help="sign each request (X-AgentOS-Signature) with the key in PATH")
    g.add_argument("--timeout", metavar="SECONDS",
                   help="connect/read/write timeout of one attempt (default: 5)")
    g.add_argument("--send-fingerprint", metavar="BOOL",
                   help="send the content fingerprint in the body (one slow derivation,"
                   " ~20 ms, before each request; true/false, default: false)")
    g = p.add_argument_group("signal / restart")
    g.add_argument("--signal", help="signal name or number (default: HUP)")
    g.add_argument("--target-name", help="exact process name (comm or argv[0] basename)")
    g.add_argument("--target-cmdline", metavar="REGEX", help="pattern over the command line")
    g.add_argument("--target-pidfile", metavar="PATH", help="file holding the target's pid")
    g.add_argument("--grace-period", metavar="SECONDS",
                   help="restart: SIGKILL this long after SIGTERM (default: 30)")
    g = p.add_argument_group("rollout")
    g.add_argument("--deployment", help="the Deployment to roll (manifests: the app label)")
    g.add_argument("--namespace", help="its namespace (default: the service account's)")
    g.add_argument("--annotation",
                   help="pod-template annotation (default: secrets.agentos.io/fingerprint)")
    g.add_argument("--api-server", metavar="URL",
                   help="default: https://kubernetes.default.svc")
    g.add_argument("--token-file", metavar="PATH", help="default: the service account token")
    g.add_argument("--ca-file", metavar="PATH", help="default: the service account CA")
    g = p.add_argument_group("exec")
    g.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                   help="command line run on each change (split like a shell, no shell)")
    g = p.add_argument_group("detection")
    g.add_argument("--debounce", metavar="SECONDS",
                   help="quiet period before acting (default: 1)")
    g.add_argument("--max-wait", metavar="SECONDS",
                   help="act at the latest this long after the first change (default: 10)")
    g.add_argument("--min-interval", metavar="SECONDS",
                   help="storm breaker: at least this long between actions (default: 10)")
    g.add_argument("--max-per-hour", metavar="N",
                   help="storm breaker: at most N actions per hour (default: 12)")
    g.add_argument("--resync", metavar="SECONDS",
                   help="periodic re-check of every watched path (default: 60)")
    g.add_argument("--backoff-initial", metavar="SECONDS",
                   help="first retry delay (default: 1; for tests)")
    g.add_argument("--backoff-max", metavar="SECONDS",
                   help="longest retry delay, also the pace of config errors (default: 60)")
    g = p.add_argument_group("state, server, logs, shutdown")
    g.add_argument("--state-file", metavar="PATH", help="last applied fingerprint")
    g.add_argument("--listen", metavar="HOST:PORT",
                   help="/healthz, /startupz, /readyz, /metrics (default: 0.0.0.0:9095;"
                   " '' or off: none)")
    g.add_argument("--log-format", metavar="json|text", help="(default: json)")
    g.add_argument("--log-level", metavar="DEBUG|INFO|WARNING|ERROR", help="(default: INFO)")
    g.add_argument("--shutdown-timeout", metavar="SECONDS",
                   help="on SIGTERM, exit within this long: an action in progress is"
                   " interrupted (an exec command's process group killed) (default: 20)")
    return p


_REPEATABLE = {"watch", "header_file"}
_FLAG_OF = {"exec_cmd": "--exec"}


def _flag(dest: str) -> str:
    return _FLAG_OF.get(dest, "--" + dest.replace("_", "-"))


def _merge_env(
    ns: argparse.Namespace, parser: argparse.ArgumentParser, env: Mapping[str, str]
) -> None:
    """Fill every flag not given on the command line from its environment variable.

    Values stay text here: :func:`parse` checks flags and variables alike.
    """
    for action in parser._actions:
        dest = action.dest
        if dest == "help" or getattr(ns, dest, None) is not None:
            continue
        raw = env.get(env_var(_flag(dest)))
        if raw is None or not raw.strip():
            continue
        if dest in _REPEATABLE:
            setattr(ns, dest, [item.strip() for item in raw.split(",") if item.strip()])
        else:
            setattr(ns, dest, raw.strip())


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


def _check_listen(listen: str) -> None:
    """``HOST:PORT`` with an IP literal (``[::]`` for IPv6), ``localhost`` or no host."""
    host, sep, port = listen.rpartition(":")
    ok = bool(sep) and re.fullmatch(r"[0-9]{1,5}", port) is not None and int(port) <= 65535
    if ok:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if bare not in ("", "localhost"):
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                ok = False
    if not ok:
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
