"""``Explanation``: where a secret came from and what it shadowed, never the value.

Returned by ``Loader.explain`` and printed by ``agentos-secrets explain``. It is a plain
immutable ``__slots__`` class rather than a dataclass because ``dataclasses`` (through
``inspect``) would add several milliseconds to ``import agentos_secrets``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Explanation"]

_FIELDS = (
    "name",
    "found",
    "source",
    "variable",
    "path",
    "rotates",
    "shadowed",
    "conflict",
    "error",
    "fingerprint",
    "notes",
)


class Explanation:
    """Where a secret came from and what it shadowed. Never holds the value.

    ``str(explanation)`` is a readable paragraph; ``as_dict()`` suits JSON. Immutable;
    equal when every field is equal.
    """

    __slots__ = _FIELDS

    name: str
    found: bool
    source: str | None
    variable: str | None
    path: str | None
    rotates: bool
    shadowed: tuple[str, ...]
    conflict: str | None
    error: str | None
    fingerprint: str | None
    notes: tuple[str, ...]

    def __init__(
        self,
        name: str,
        found: bool,
        source: str | None = None,
        variable: str | None = None,
        path: str | None = None,
        rotates: bool = False,
        shadowed: tuple[str, ...] = (),
        conflict: str | None = None,
        error: str | None = None,
        fingerprint: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        values = (
            name,
            found,
            source,
            variable,
            path,
            rotates,
            tuple(shadowed),
            conflict,
            error,
            fingerprint,
            tuple(notes),
        )
        for field, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, field, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Explanation is immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError("Explanation is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Explanation):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS)
        return f"Explanation({inner})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "found": self.found,
            "source": self.source,
            "variable": self.variable,
            "path": self.path,
            "rotates": self.rotates,
            "shadowed": list(self.shadowed),
            "conflict": self.conflict,
            "error": self.error,
            "fingerprint": self.fingerprint,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        where = {
            "env": f"environment variable {self.variable}",
            "file": f"file {self.path} (from {self.variable})",
            "directory": f"file {self.path} (secret directory)",
            "provider": "the provider",
        }.get(self.source or "", self.source or "?")
        if self.found:
            head = f"{self.name}: from {where}"
            head += "; follows the file as it rotates" if self.rotates else "; static"
            if self.fingerprint:
                head += f"; fingerprint {self.fingerprint}"
        elif self.source is not None or self.error:
            # The source that answers is broken: say so rather than "missing", since
            # get() raises here instead of returning the default.
            head = f"{self.name}: unusable (from {where if self.source else 'its source'})"
        else:
            head = f"{self.name}: missing"
        lines = [head]
        if self.conflict:
            lines.append(f"  conflict: {self.conflict}")
        lines.extend(f"  shadows: {s}" for s in self.shadowed)
        if self.error:
            lines.append(f"  error: {self.error}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
