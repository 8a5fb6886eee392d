"""What the precedence chain says about a name: :class:`Origin` and :class:`Located`.

Both are safe to print: they hold names and paths, never content. Kept apart from the
chain (``sources``) so that the live cache (``cache``), which keys its entries by origin,
depends on these types only and never on the chain.
"""

from __future__ import annotations

from .files import shown_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import cost)
if TYPE_CHECKING:
    from typing import Any, Literal

    SourceKind = Literal["env", "file", "directory", "provider"]
else:
    SourceKind = str

__all__ = ["Located", "Origin", "SourceKind"]


class Origin(tuple[str, str | None, str | None, str | None]):
    """Where a value comes from. Safe to print: names and paths, never content.

    An immutable typed tuple ``(kind, variable, path, directory)``: one is built per
    lookup, so it must be cheap to build and compare (and ``dataclasses`` would cost
    milliseconds at import).
    """

    __slots__ = ()

    def __new__(
        cls,
        kind: SourceKind,
        variable: str | None = None,
        path: str | None = None,
        directory: str | None = None,
    ) -> Origin:
        return tuple.__new__(cls, (kind, variable, path, directory))

    @property
    def kind(self) -> SourceKind:
        return self[0]  # type: ignore[return-value]

    @property
    def variable(self) -> str | None:
        return self[1]

    @property
    def path(self) -> str | None:
        return self[2]

    @property
    def directory(self) -> str | None:
        return self[3]

    @property
    def rotates(self) -> bool:
        """File-backed values follow the file; env and provider values are static."""
        return self[0] in ("file", "directory")

    def describe(self) -> str:
        kind = self[0]
        if kind == "env":
            return f"environment variable {self.variable}"
        if kind == "file":
            return f"file {shown_path(self.path or '')} (from {self.variable})"
        if kind == "directory":
            return f"file {self.path} (secret directory {self.directory})"
        return "provider"

    def __repr__(self) -> str:
        # shown_path: a NAME_FILE that is not an absolute path may be the secret itself.
        path = None if self[2] is None else shown_path(self[2])
        return (
            f"Origin(kind={self[0]!r}, variable={self[1]!r}, path={path!r},"
            f" directory={self[3]!r})"
        )


class Located:
    """The outcome of walking the chain for one name, before anything is read.

    ``marks`` and ``absent`` say what decided it, for the Loader's fast path: the
    (key, raw value) of each environment variable read (``NAME``, ``NAME_FILE``, and
    ``CREDENTIALS_DIRECTORY`` when the value was found there), and the paths in earlier
    secret directories that did not exist. Never holds a value.
    """

    __slots__ = ("absent", "chosen", "conflict", "marks", "name", "shadowed")

    def __init__(
        self,
        name: str,
        chosen: Origin | None,
        shadowed: tuple[Origin, ...],
        conflict: bool,
        marks: tuple[tuple[Any, Any], ...] = (),
        absent: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.chosen = chosen
        self.shadowed = shadowed
        self.conflict = conflict
        self.marks = marks
        self.absent = absent

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Located):
            return NotImplemented
        return (self.name, self.chosen, self.shadowed, self.conflict) == (
            other.name,
            other.chosen,
            other.shadowed,
            other.conflict,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return (
            f"Located(name={self.name!r}, chosen={self.chosen!r},"
            f" shadowed={self.shadowed!r}, conflict={self.conflict!r})"
        )
