"""The sidecar's validated configuration object, and the names of flags and variables.

:class:`Config` holds paths and names only, never secret content, and its repr redacts
what may carry one; :class:`StatusRanges` is ``--expect-status`` parsed; ``env_var``
names the variable of a flag (``--max-per-hour`` -> ``AGENTOS_SIDECAR_MAX_PER_HOUR``) and
:class:`ConfigError` is what every check raises. Kept apart from the flag table
(``config_values``), the parser (``config_flags``) and :func:`~.config.parse` because
the actions and the server use the object without any of the parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ACTIONS", "DEFAULT_CA_FILE", "DEFAULT_TOKEN_FILE", "ENV_PREFIX", "Config", "ConfigError",
    "StatusRanges", "env_var",
]

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


_FLAG_OF = {"exec_cmd": "--exec"}


def _flag(dest: str) -> str:
    return _FLAG_OF.get(dest, "--" + dest.replace("_", "-"))


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
