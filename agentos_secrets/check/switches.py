"""Settings that are switches or choices, read exactly as the components read them.

A switch that is not understood must never quietly become the insecure choice: ``check``
reads every boolean with :func:`agentos_secrets.booleans.parse_bool`, the one reading the
sidecar and the Loader share, and every choice with the sidecar's own list, and it says
what each component will do with the value. A value is shown only when it is one of the
known words (which cannot be a secret); anything else is described, never quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..booleans import FALSE_WORDS, TRUE_WORDS, BooleanSettingError, parse_bool

__all__ = [
    "BOOLEANS",
    "CHOICES",
    "PROFILES",
    "Problem",
    "bool_word",
    "problems",
    "sidecar_choice_problem",
    "sidecar_listen_problem",
    "sidecar_number",
    "sidecar_number_problem",
    "sidecar_order_problem",
]

#: Boolean settings and what an unreadable value makes of them.
BOOLEANS: dict[str, str] = {
    "AGENTOS_METRICS_REQUIRE_AUTH": "the sidecar fails closed (requires the token on "
    "/metrics); the platform accepts only exactly 1 in prod",
    "AGENTOS_ALLOW_DEV_HEADERS": "no reader can tell whether dev headers were meant to be on",
    "AGENTOS_SIDECAR_SEND_FINGERPRINT": "the sidecar cannot tell whether to send the "
    "fingerprint header",
}
#: What the platform recognises in AGENTOS_PROFILE (trimmed, lower-cased); anything else
#: runs as dev, without prod's guards.
PROFILES = frozenset({"prod", "demo", "dev"})
#: The sidecar's choice flags (``--action`` etc.): its words, matched as its parser
#: matches them (trimmed, case-insensitively: ``Signal`` is ``signal``).
CHOICES: dict[str, tuple[str, ...]] = {
    "action": ("http", "signal", "restart", "rollout", "exec", "none"),
    "log-format": ("json", "text"),
    "log-level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}


#: The sidecar's numeric flags and the closed range its parser enforces on each:
#: ``(lowest, highest, whole)``; seconds are finite floats, ``--max-per-hour`` a whole
#: count written with at most 9 ASCII digits.
NUMBERS: dict[str, tuple[float, float, bool]] = {
    "debounce": (0.0, 3600.0, False),
    "max-wait": (0.0, 86400.0, False),
    "min-interval": (0.0, 86400.0, False),
    "resync": (0.05, 86400.0, False),
    "backoff-initial": (0.001, 3600.0, False),
    "backoff-max": (0.001, 86400.0, False),
    "timeout": (0.01, 3600.0, False),
    "grace-period": (0.01, 3600.0, False),
    "shutdown-timeout": (0.5, 3600.0, False),
    "max-per-hour": (1, 1_000_000, True),
}
#: Pairs the sidecar orders: the first must not be shorter than the second.
ORDERED: tuple[tuple[str, str, float, float], ...] = (
    # (flag, must be >= flag, default of the first, default of the second)
    ("max-wait", "debounce", 10.0, 1.0),
    ("backoff-max", "backoff-initial", 60.0, 1.0),
)
#: The sidecar reads at most this many characters of a number of seconds.
_MAX_NUMBER_CHARS = 64


class Problem(NamedTuple):
    """A setting not understood: the variable (or flag) and what follows from it."""

    variable: str
    message: str


def bool_word(raw: str) -> str:
    """A boolean value as messages may show it: the word when it is a known one."""
    word = raw.strip()
    if word.lower() in TRUE_WORDS | FALSE_WORDS:
        return f'"{word}"' + (" (with surrounding spaces)" if word != raw else "")
    return "not a boolean word (the value is not shown)"


def problems(env: Mapping[str, str | None]) -> list[Problem]:
    """Every boolean or profile setting of ``env`` that the components cannot read.

    Values that are None (set from a source this check cannot see) are skipped.
    """
    found: list[Problem] = []
    for variable, consequence in BOOLEANS.items():
        raw = env.get(variable)
        if raw is None:
            continue
        try:
            parse_bool(variable, raw, default=False)
        except BooleanSettingError:
            found.append(Problem(
                variable,
                f"{variable} is not a boolean (the value is not shown; use 1/true/yes/on "
                f"or 0/false/no/off): {consequence}",
            ))
    profile = env.get("AGENTOS_PROFILE")
    if profile is not None and profile.strip() and profile.strip().lower() not in PROFILES:
        found.append(Problem(
            "AGENTOS_PROFILE",
            "AGENTOS_PROFILE is not prod, demo or dev (the value is not shown): the "
            "platform runs it as dev, without prod's start-up guards",
        ))
    return found


def sidecar_choice_problem(flag: str, raw: str, *, from_env: bool) -> str | None:
    """Why the sidecar refuses ``raw`` for the choice ``--flag``, or None.

    As the sidecar: an empty variable leaves the default; otherwise the trimmed value
    must equal one of the words, ignoring case.
    """
    choices = CHOICES.get(flag)
    if choices is None:
        return None
    value = raw.strip()
    if from_env and not value:
        return None
    if value.lower() in (c.lower() for c in choices):
        return None
    return (f"--{flag} is not one of {', '.join(choices)}: the sidecar refuses to start "
            "(the value is not shown)")


def sidecar_number(flag: str, raw: str) -> float | None:
    """``raw`` as the sidecar's parser reads the numeric ``--flag``; None when it would
    refuse it (not a number, not finite, or out of :data:`NUMBERS`' range)."""
    import math
    import re

    low, high, whole = NUMBERS[flag]
    text = raw.strip()
    if whole:
        if not re.fullmatch(r"[0-9]{1,9}", text):
            return None
        value = float(text)
    else:
        try:
            value = float(text) if len(text) <= _MAX_NUMBER_CHARS else math.nan
        except ValueError:
            return None
    if not math.isfinite(value) or not low <= value <= high:
        return None
    return value


def sidecar_number_problem(flag: str, raw: str, *, from_env: bool) -> str | None:
    """Why ``raw`` is no usable value for the sidecar's numeric ``--flag``, or None.

    A number must be finite (``inf``, ``nan`` and ``1e999`` parse as floats but make a
    timer that never fires or fires at once) and within the range the sidecar enforces
    (:data:`NUMBERS`); ``--max-per-hour`` is a whole count.
    """
    if flag not in NUMBERS or (from_env and not raw.strip()):
        return None
    if sidecar_number(flag, raw) is not None:
        return None
    low, high, whole = NUMBERS[flag]
    kind = "a whole number" if whole else "a finite number"
    return (f"--{flag} must be {kind} from {low:g} to {high:g} (the value is not shown): "
            "the sidecar refuses to start")


def sidecar_order_problem(values: Mapping[str, float]) -> str | None:
    """Why the sidecar refuses the combination of ``values`` (flag -> a usable number,
    flags left unset absent), or None: ``--max-wait`` shorter than ``--debounce``, or
    ``--backoff-max`` shorter than ``--backoff-initial``."""
    for longer, shorter, longer_default, shorter_default in ORDERED:
        if longer not in values and shorter not in values:
            continue
        if values.get(longer, longer_default) < values.get(shorter, shorter_default):
            return (f"--{longer} ({values.get(longer, longer_default):g}) is shorter than "
                    f"--{shorter} ({values.get(shorter, shorter_default):g}): the sidecar "
                    "refuses to start")
    return None


def sidecar_listen_problem(raw: str, *, from_env: bool) -> str | None:
    """Why the sidecar refuses ``raw`` for ``--listen``, or None.

    As the sidecar: ``off``, ``none`` or empty disable it; otherwise ``HOST:PORT`` with
    a port of at most 5 digits up to 65535 and a host that is empty, ``localhost`` or
    an IP literal (IPv6 in brackets).
    """
    from ..sidecar.config_values import listen_is_valid

    value = raw.strip() if from_env else raw
    if value.strip().lower() in ("", "off", "none"):
        return None
    if listen_is_valid(value):
        return None
    return ("--listen is not HOST:PORT with an IP address (or off): the sidecar refuses "
            "to start (the value is not shown)")
