"""``Explanation``: where a secret came from and what it shadowed, never the value.

Returned by ``Loader.explain`` (built by :func:`explain`) and printed by
``agentos-secrets explain``. It is a plain immutable ``__slots__`` class rather than a
dataclass because ``dataclasses`` (through ``inspect``) would add several milliseconds to
``import agentos_secrets``.

Paths are shown through ``files.shown_path``: a ``NAME_FILE`` value that is not an
absolute path is never echoed (it is most often the secret itself, set in the wrong
variable); errors carry only what ``SecretError`` messages carry (names and paths).
"""

from __future__ import annotations

from .errors import SecretError
from .files import shown_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .grace import GraceWindow
    from .sources import Chain, FileReader

__all__ = ["Explanation", "explain"]

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


def _never_rotates(path: str) -> str | None:
    """Why the file at ``path`` can never change, or None: a single mounted file.

    That is what a Secret mounted with ``subPath`` looks like, and the kubelet never
    updates it (kubernetes issue 50345). ``watch.layout_of`` is the one place that knows.
    """
    from .watch import layout_of  # reads /proc/self/mountinfo; explain() only

    layout = layout_of(path)
    return layout.warning if layout.kind == "mounted-file" else None


def explain(
    key: str,
    chain: Chain,
    read: FileReader,
    error_of: Callable[[str], SecretError | None],
    window: GraceWindow,
) -> Explanation:
    """What ``Loader.explain`` returns for the normalised ``key``; never raises for a
    broken source (its error is reported). ``read`` reads a file origin (the live
    cache), ``error_of(path)`` is the re-read error its kept value masks, ``window`` the
    values ``verify`` still accepts after a rotation."""
    located = chain.locate(key, exhaustive=True)
    shadowed = tuple(o.describe() for o in located.shadowed)
    conflict = None
    if located.conflict:
        conflict = f"{key} and {key}_FILE are both set; on_conflict={chain.on_conflict!r}"
    origin = located.chosen
    failure: str | None = None
    try:
        secret = chain.resolve(key, read, located=located, quiet=True)[1]
    except SecretError as exc:
        failure = str(exc)  # names and paths only; kept outside the except block
        secret = None
    if failure is not None:
        return Explanation(
            name=key,
            found=False,
            source=origin.kind if origin else None,
            variable=origin.variable if origin else None,
            path=shown_path(origin.path) if origin and origin.path else None,
            rotates=bool(origin and origin.rotates),
            shadowed=shadowed,
            conflict=conflict,
            error=failure,
        )
    if secret is None or origin is None:
        return Explanation(name=key, found=False, shadowed=shadowed, conflict=conflict)
    notes: list[str] = []
    error = None
    rotates = origin.rotates
    if origin.path is not None:
        masked = error_of(origin.path)
        if masked is not None:
            error = str(masked)
            notes.append("the last re-read failed; the last good value is kept")
        frozen = _never_rotates(origin.path)
        if frozen is not None:
            rotates = False
            notes.append(frozen)
    kept = window.count(key)
    if kept:
        notes.append(
            f"verify() also accepts {kept} value(s) replaced by a rotation in the last"
            f" {window.grace:g} s"
        )
    previous = chain.locate(key + "_PREVIOUS").chosen
    if previous is not None:
        notes.append(f"verify() also accepts {key}_PREVIOUS from {previous.describe()}")
    return Explanation(
        name=key,
        found=True,
        source=origin.kind,
        variable=origin.variable,
        path=shown_path(origin.path) if origin.path else None,
        rotates=rotates,
        shadowed=shadowed,
        conflict=conflict,
        error=error,
        fingerprint=secret.fingerprint(),
        notes=tuple(notes),
    )
