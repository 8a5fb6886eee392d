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
    "sidecar_number_problem",
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
#: The sidecar's choice flags (``--action`` etc.): exact words, as its argument parser
#: takes them (the environment variable is trimmed first).
CHOICES: dict[str, tuple[str, ...]] = {
    "action": ("http", "signal", "restart", "rollout", "exec"),
    "log-format": ("json", "text"),
    "log-level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}


#: The sidecar's numeric flags: whether 0 is allowed, and whether it is a whole count.
NUMBERS: dict[str, tuple[bool, bool]] = {
    "debounce": (True, False),
    "max-wait": (True, False),
    "min-interval": (True, False),
    "resync": (False, False),
    "backoff-initial": (False, False),
    "backoff-max": (False, False),
    "timeout": (False, False),
    "grace-period": (False, False),
    "max-per-hour": (False, True),
}


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
    """Why the sidecar refuses ``raw`` for the choice ``--flag``, or None."""
    choices = CHOICES.get(flag)
    if choices is None:
        return None
    value = raw.strip() if from_env else raw
    if from_env and not value:
        return None  # an empty variable leaves the default
    if value in choices:
        return None
    near = [c for c in choices if c.lower() == value.strip().lower()]
    hint = f" (write {near[0]}: the sidecar compares exactly)" if near else ""
    return (f"--{flag} is not one of {', '.join(choices)}{hint}: the sidecar refuses to "
            "start (the value is not shown)")


def sidecar_number_problem(flag: str, raw: str, *, from_env: bool) -> str | None:
    """Why ``raw`` is no usable value for the sidecar's numeric ``--flag``, or None.

    A number must be finite (``inf``, ``nan`` and ``1e999`` parse as floats but make a
    timer that never fires or fires at once), non-negative, and above zero unless the
    flag allows zero; ``--max-per-hour`` is a whole count of at least 1.
    """
    import math

    rule = NUMBERS.get(flag)
    if rule is None:
        return None
    zero_ok, whole = rule
    text = raw.strip()
    if from_env and not text:
        return None
    try:
        value = float(int(text)) if whole else float(text)
    except (ValueError, OverflowError):
        return f"--{flag} is not {'a whole number' if whole else 'a number'} (not shown)"
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        return f"--{flag} must be a finite number {bound} (the value is not shown)"
    return None


def sidecar_listen_problem(raw: str, *, from_env: bool) -> str | None:
    """Why the sidecar refuses ``raw`` for ``--listen`` (``HOST:PORT``, or ``off``), or
    None. As the sidecar: ``off``, ``none`` or empty disable it, else the text after the
    last ``:`` must be a port number up to 65535."""
    import re

    value = raw.strip() if from_env else raw
    if value.strip().lower() in ("", "off", "none"):
        return None
    _host, sep, port = value.rpartition(":")
    if sep and re.fullmatch(r"[0-9]{1,5}", port) and int(port) <= 65535:
        return None
    return ("--listen is not HOST:PORT (or off): the sidecar refuses to start (the value "
            "is not shown)")
