"""The sidecar's command line: the argparse parser, and the environment merged into it.

Every flag ``--some-flag`` is also read from ``AGENTOS_SIDECAR_SOME_FLAG`` (repeatable
flags: comma-separated); the command line wins. The parser's errors never quote a value
(argparse's own messages are sanitised). Values stay text here: the checks are in
``config_values`` and :func:`~.config.parse` applies them. Kept apart because the flag
surface (names, help, groups) is a contract of its own (sidecar/README.md).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import NoReturn

from .config_model import ACTIONS, ENV_PREFIX, ConfigError, _flag, env_var
from .config_values import MAX_HEADER_FILES, MAX_WATCH

_REPEATABLE = {"watch", "header_file"}


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
                   help="/healthz, /startupz, /readyz, /status, /metrics (default: 0.0.0.0:9095;"
                   " '' or off: none)")
    g.add_argument("--log-format", metavar="json|text", help="(default: json)")
    g.add_argument("--log-level", metavar="DEBUG|INFO|WARNING|ERROR", help="(default: INFO)")
    g.add_argument("--shutdown-timeout", metavar="SECONDS",
                   help="on SIGTERM, exit within this long: an action in progress is"
                   " interrupted (an exec command's process group killed) (default: 20)")
    return p


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
