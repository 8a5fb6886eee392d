"""One reading of boolean settings, shared by the sidecar, ``check`` and the Loader.

A boolean setting that is not understood must never quietly become the insecure choice
(``AGENTOS_METRICS_REQUIRE_AUTH=true`` once left ``/metrics`` open because only ``1`` was
recognised). Every component reads such values with :func:`parse_bool`, so ``check``
reports exactly what the sidecar will do with a value.

Accepted, after trimming, case-insensitively: ``1 true yes on`` and ``0 false no off``.
Empty or unset means the caller's default. Anything else is a :class:`BooleanSettingError`
that names the variable and the accepted spellings, never the value itself: a value in the
wrong variable may be a secret.
"""

from __future__ import annotations

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "BooleanSettingError", "parse_bool", "read_bool"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class BooleanSettingError(ValueError):
    """A boolean setting holds a value that is neither a true nor a false word."""

    def __init__(self, variable: str) -> None:
        super().__init__(
            f"{variable} is not a boolean: use one of 1/true/yes/on or 0/false/no/off "
            "(the value is not shown)"
        )
        self.variable = variable


def parse_bool(variable: str, raw: str | None, *, default: bool) -> bool:
    """``raw`` read as a boolean; ``default`` when it is ``None`` or blank.

    Raises :class:`BooleanSettingError` (naming ``variable``, never ``raw``) for anything
    else. Callers decide what an error means, and must fail closed: a security switch
    that cannot be read is treated as on (and said loudly), never as off.
    """
    if raw is None:
        return default
    word = raw.strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BooleanSettingError(variable)


def read_bool(env: object, variable: str, *, default: bool) -> bool:
    """:func:`parse_bool` of ``env.get(variable)`` (``env`` is any mapping of str to str)."""
    getter = getattr(env, "get", None)
    raw = getter(variable) if getter is not None else None
    if raw is not None and not isinstance(raw, str):
        raise BooleanSettingError(variable)
    return parse_bool(variable, raw, default=default)
