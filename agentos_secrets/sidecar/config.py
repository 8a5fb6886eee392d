"""The sidecar's configuration: command-line flags, each also read from the environment.

Every flag ``--some-flag`` is also read from ``AGENTOS_SIDECAR_SOME_FLAG`` (repeatable
flags: comma-separated), so manifests can configure the sidecar with ``env:`` alone.
Flags on the command line win over the environment (docs/contracts.md). A bad value is a
:class:`ConfigError` that names the flag *and* its variable, never a secret: no secret is
ever passed as a flag, only paths to files holding one.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Config:
    """The validated configuration. Holds paths and names only, never secret content."""

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

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


# -- the flag table ----------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentos-secrets sidecar",
        description="Watch mounted Secrets; on a real content change, make the app use it "
        "(HTTP reload, signal, restart, rollout or a command) exactly once, reliably, or "
        "(none) only report what is mounted for apps that read through the Loader per use. "
        f"Every flag is also read from {ENV_PREFIX}<FLAG> (repeatable flags: "
        "comma-separated); the command line wins. See sidecar/README.md.",
    )
    a = p.add_argument
    a("--watch", action="append", metavar="DIR",
      help="a mounted Secret directory, or a file watched through its directory (repeatable)")
    a("--action", choices=ACTIONS, help="what to do on a change (default: http)")
    g = p.add_argument_group("http")
    g.add_argument("--url", help="the reload endpoint")
    g.add_argument("--method", help="HTTP method (default: POST)")
    g.add_argument("--expect-status", metavar="RANGES",
                   help="accepted statuses, e.g. 200-299,304 (default: 200-299)")
    g.add_argument("--header-file", action="append", metavar="NAME=PATH",
                   help="a request header whose value is read from PATH on every attempt")
    g.add_argument("--hmac-key-file", metavar="PATH",
                   help="sign each request (X-AgentOS-Signature) with the key in PATH")
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="connect/read/write timeout of one attempt (default: 5)")
    g.add_argument("--send-fingerprint", choices=("true", "false"),
                   help="send the content fingerprint in the body (one slow derivation,"
                   " ~20 ms, before each request; default: false)")
    g = p.add_argument_group("signal / restart")
    g.add_argument("--signal", help="signal name or number (default: HUP)")
    g.add_argument("--target-name", help="exact process name (comm or argv[0] basename)")
    g.add_argument("--target-cmdline", metavar="REGEX", help="pattern over the command line")
    g.add_argument("--target-pidfile", metavar="PATH", help="file holding the target's pid")
    g.add_argument("--grace-period", type=float, metavar="SECONDS",
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
    g.add_argument("--debounce", type=float, metavar="SECONDS",
                   help="quiet period before acting (default: 1)")
    g.add_argument("--max-wait", type=float, metavar="SECONDS",
                   help="act at the latest this long after the first change (default: 10)")
    g.add_argument("--min-interval", type=float, metavar="SECONDS",
                   help="storm breaker: at least this long between actions (default: 10)")
    g.add_argument("--max-per-hour", type=int, metavar="N",
                   help="storm breaker: at most N actions per hour (default: 12)")
    g.add_argument("--resync", type=float, metavar="SECONDS",
                   help="periodic re-check of every watched path (default: 60)")
    g.add_argument("--backoff-initial", type=float, metavar="SECONDS",
                   help="first retry delay (default: 1; for tests)")
    g.add_argument("--backoff-max", type=float, metavar="SECONDS",
                   help="longest retry delay, also the pace of config errors (default: 60)")
    g = p.add_argument_group("state, server, logs")
    g.add_argument("--state-file", metavar="PATH", help="last applied fingerprint")
    g.add_argument("--listen", metavar="HOST:PORT",
                   help="/healthz, /startupz, /readyz, /metrics (default: 0.0.0.0:9095;"
                   " '' or off: none)")
    g.add_argument("--log-format", choices=("json", "text"), help="(default: json)")
    g.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="(default: INFO)")
    return p


_REPEATABLE = {"watch", "header_file"}
_FLAG_OF = {"exec_cmd": "--exec"}


def _flag(dest: str) -> str:
    return _FLAG_OF.get(dest, "--" + dest.replace("_", "-"))


def _merge_env(
    ns: argparse.Namespace, parser: argparse.ArgumentParser, env: Mapping[str, str]
) -> None:
    """Fill every flag not given on the command line from its environment variable."""
    for action in parser._actions:
        dest = action.dest
        if dest == "help" or getattr(ns, dest, None) is not None:
            continue
        flag = _flag(dest)
        raw = env.get(env_var(flag))
        if raw is None or not raw.strip():
            continue
        if dest in _REPEATABLE:
            setattr(ns, dest, [item.strip() for item in raw.split(",") if item.strip()])
            continue
        raw = raw.strip()
        if action.choices is not None and raw not in action.choices:
            raise ConfigError(
                f"{_where(flag)}: must be one of {', '.join(map(str, action.choices))},"
                f" not {raw!r}"
            )
        if action.type is not None:
            try:
                value = action.type(raw)  # type: ignore[operator]
            except ValueError:
                raise ConfigError(f"{_where(flag)}: not a number: {raw!r}") from None
            setattr(ns, dest, value)
        else:
            setattr(ns, dest, raw)


def _positive(flag: str, value: float, *, zero_ok: bool = False) -> float:
    if value < 0 or (value == 0 and not zero_ok) or value != value:
        raise ConfigError(f"{_where(flag)}: must be {'>= 0' if zero_ok else '> 0'}")
    return value


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Config:
    """Parse flags and environment into a :class:`Config`; ``ConfigError`` when unusable.

    ``--help`` and argparse's own errors exit through ``SystemExit`` as usual.
    """
    env = os.environ if env is None else env
    parser = _build_parser()
    ns = parser.parse_args(list(argv))
    _merge_env(ns, parser, env)

    watch = tuple(os.path.abspath(w) for w in (ns.watch or []))
    if not watch:
        raise ConfigError(f"{_where('--watch')}: give at least one directory to watch")
    action = ns.action or "http"
    kw: dict[str, object] = {"watch": watch, "action": action}

    for name in ("debounce", "max_wait", "min_interval", "resync",
                 "backoff_initial", "backoff_max", "timeout", "grace_period"):
        value = getattr(ns, name)
        if value is not None:
            zero_ok = name in ("debounce", "max_wait", "min_interval")
            kw[name] = _positive(_flag(name), value, zero_ok=zero_ok)
    if ns.max_per_hour is not None:
        if ns.max_per_hour < 1:
            raise ConfigError(f"{_where('--max-per-hour')}: must be at least 1")
        kw["max_per_hour"] = ns.max_per_hour
    if kw.get("max_wait", 10.0) < kw.get("debounce", 1.0):  # type: ignore[operator]
        raise ConfigError(f"{_where('--max-wait')}: must not be shorter than --debounce")
    if kw.get("backoff_max", 60.0) < kw.get("backoff_initial", 1.0):  # type: ignore[operator]
        raise ConfigError(f"{_where('--backoff-max')}: must not be shorter than --backoff-initial")

    for name in ("url", "method", "hmac_key_file", "signal", "target_name", "target_cmdline",
                 "target_pidfile", "deployment", "namespace", "annotation", "api_server",
                 "token_file", "ca_file", "state_file", "log_format", "log_level"):
        value = getattr(ns, name)
        if value is not None:
            kw[name] = value
    if ns.send_fingerprint is not None:
        kw["send_fingerprint"] = ns.send_fingerprint == "true"
    if ns.listen is not None:
        kw["listen"] = None if ns.listen.strip().lower() in ("", "off", "none") else ns.listen
    if ns.expect_status is not None:
        try:
            kw["expect_status"] = StatusRanges(ns.expect_status)
        except ValueError as exc:
            raise ConfigError(
                f"{_where('--expect-status')}: {exc.args[0]!r} is not a status or range"
                " like 200-299"
            ) from None
    headers: list[tuple[str, str]] = []
    for item in ns.header_file or []:
        name, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9-]+", name.strip()) or not path.strip():
            raise ConfigError(f"{_where('--header-file')}: expected NAME=PATH, got {item!r}")
        headers.append((name.strip(), os.path.abspath(path.strip())))
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
    _, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{_where('--listen')}: expected HOST:PORT, got {listen!r}")


def _check_action(config: Config) -> None:
    if config.action == "http":
        if not config.url:
            raise ConfigError(f"{_where('--url')}: required with --action http")
        if not re.match(r"https?://[^/]", config.url):
            raise ConfigError(f"{_where('--url')}: must be an http:// or https:// URL")
        if not re.fullmatch(r"[A-Z]+", config.method):
            raise ConfigError(f"{_where('--method')}: not an HTTP method")
    elif config.action in ("signal", "restart"):
        given = [f for f in ("target_name", "target_cmdline", "target_pidfile")
                 if getattr(config, f)]
        if len(given) != 1:
            raise ConfigError(
                f"--action {config.action} needs exactly one of --target-name,"
                " --target-cmdline, --target-pidfile (AGENTOS_SIDECAR_TARGET_NAME, ...)"
            )
        if config.target_cmdline:
            try:
                re.compile(config.target_cmdline)
            except re.error as exc:
                raise ConfigError(f"{_where('--target-cmdline')}: bad pattern ({exc})") from None
    elif config.action == "exec" and not config.exec_argv:
        raise ConfigError(f"{_where('--exec')}: required with --action exec")
