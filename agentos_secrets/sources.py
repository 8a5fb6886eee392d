"""The precedence chain: where a secret named ``NAME`` may come from, in order.

1. ``NAME``, when non-empty after trimming (whitespace-only counts as unset);
2. ``NAME_FILE``, when non-empty: a hard error if the file cannot be read;
3. each secret directory in order, then ``$CREDENTIALS_DIRECTORY`` (systemd credentials):
   a file named ``NAME`` (dot-entries are never keys);
4. the provider, a callable from name to value;
5. missing.

``NAME`` and ``NAME_FILE`` both set is a conflict resolved by ``on_conflict``:
``"warn"`` (``NAME`` wins, one warning), ``"error"`` or ``"prefer-file"``.

This module only *locates*; ``loader`` reads, caches and wraps.
"""

from __future__ import annotations

import errno
import os

from .errors import InvalidNameError
from .files import shown_path

# typing.TYPE_CHECKING without importing typing: ``import agentos_secrets`` must stay cheap
# (typing, re and dataclasses together cost several milliseconds at start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Literal

__all__ = [
    "CREDENTIALS_DIRECTORY_VAR",
    "ConflictPolicy",
    "Origin",
    "Provider",
    "directories",
    "env_text",
    "locate",
    "normalize_name",
]

if TYPE_CHECKING:
    ConflictPolicy = Literal["warn", "error", "prefer-file"]
    SourceKind = Literal["env", "file", "directory", "provider"]
    Provider = Callable[[str], "str | bytes | object | None"]
else:
    # Runtime stand-ins so that ``from .sources import ConflictPolicy`` keeps working;
    # the precise types above are for type checkers only.
    ConflictPolicy = SourceKind = str
    Provider = object

CREDENTIALS_DIRECTORY_VAR = "CREDENTIALS_DIRECTORY"
FILE_SUFFIX = "_FILE"
_MAX_NAME = 255


def _is_variable_name(name: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_]*``, checked with str methods (no ``re`` at import)."""
    return (
        name.isascii()
        and name.replace("_", "a").isalnum()  # ASCII letters, digits, underscores only
        and not name[0].isdigit()
    )


def normalize_name(name: object) -> str:
    """Trim ``name`` and check it is a usable environment-variable name."""
    if not isinstance(name, str):
        raise InvalidNameError(
            f"secret name must be a string, not {type(name).__name__}"
        )
    trimmed = name.strip()
    if not trimmed:
        raise InvalidNameError("secret name is empty")
    if len(trimmed) > _MAX_NAME or not _is_variable_name(trimmed):
        # A malformed name is shown with repr(): it is a name, not a value.
        raise InvalidNameError(
            f"secret name {trimmed[:64]!r} is not a valid variable name "
            "(letters, digits and underscores, not starting with a digit)",
            variable=trimmed[:64],
        )
    return trimmed


def env_text(env: Mapping[str, str], variable: str) -> str | None:
    """The variable's value trimmed, or None when unset, empty or whitespace-only."""
    value = env.get(variable)
    if value is None:
        return None
    value = value.strip()
    return value or None


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
        return (
            f"Origin(kind={self[0]!r}, variable={self[1]!r}, path={self[2]!r},"
            f" directory={self[3]!r})"
        )


def directories(
    secret_dirs: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    use_credentials_directory: bool,
) -> tuple[str, ...]:
    """The secret directories to search, in order, credentials directory last.

    Called on every cold lookup (``$CREDENTIALS_DIRECTORY`` is read live): one tuple,
    extended only when the credentials directory adds something.
    """
    dirs = tuple([os.fspath(d) for d in secret_dirs])
    if use_credentials_directory:
        creds = env_text(env, CREDENTIALS_DIRECTORY_VAR)
        if creds and creds not in dirs:
            return (*dirs, creds)
    return dirs


def _exists(path: str) -> bool:
    """``os.path.lexists``, cheaper for the usual case of a kubelet key.

    ``readlink`` succeeds on a symlink (every key of a kubelet volume is one) without
    building the ~20-field ``stat_result`` that ``lstat`` returns; ``EINVAL`` means the
    path exists but is not a link (a docker or systemd secrets file). Any other error
    (``ENOENT``, ``ENOTDIR``, ``EACCES``, ``ELOOP``) is a miss, as for ``lexists``.
    """
    try:
        os.readlink(path)
    except OSError as exc:
        return exc.errno == errno.EINVAL  # readlink's "not a symlink"
    except ValueError:  # an embedded NUL
        return False
    return True


class Located:
    """The outcome of walking the chain for one name, before anything is read."""

    __slots__ = ("chosen", "conflict", "name", "shadowed")

    def __init__(
        self, name: str, chosen: Origin | None, shadowed: tuple[Origin, ...], conflict: bool
    ) -> None:
        self.name = name
        self.chosen = chosen
        self.shadowed = shadowed
        self.conflict = conflict

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


def locate(
    name: str,
    env: Mapping[str, str],
    dirs: Sequence[str],
    has_provider: bool,
    on_conflict: ConflictPolicy,
    *,
    exhaustive: bool = False,
) -> Located:
    """Walk the chain for an already-normalised ``name``.

    With ``exhaustive=False`` (the hot path) it stops at the first source that answers;
    with ``exhaustive=True`` (``explain``) it also lists every lower source that is
    configured, as ``shadowed``. The provider is never called here: it is always last
    and only the loader knows whether it answers.
    """
    # Origins are built with tuple.__new__ directly and env_text is inlined: this runs
    # once per cold lookup, and each Python-level call here costs as much as a syscall.
    new = tuple.__new__
    found: list[Origin] = []
    conflict = False
    value = env.get(name)
    if value is not None and not value.isspace() and value:
        found.append(new(Origin, ("env", name, None, None)))
    file_var = name + FILE_SUFFIX
    file_path = env.get(file_var)
    if file_path is not None:
        file_path = file_path.strip()
    if file_path:
        origin = new(Origin, ("file", file_var, file_path, None))
        if found:
            conflict = True
            if on_conflict == "prefer-file":
                found.insert(0, origin)
            else:
                found.append(origin)
        else:
            found.append(origin)
    if not found or exhaustive:
        for directory in dirs:
            # os.path.join inlined (the same result for a valid name)
            if not directory or directory.endswith("/"):
                path = directory + name
            else:
                path = directory + "/" + name
            if not _exists(path):
                continue
            found.append(new(Origin, ("directory", None, path, directory)))
            if not exhaustive:
                break
    if has_provider and (not found or exhaustive):
        found.append(new(Origin, ("provider", None, None, None)))
    if not found:
        return Located(name, None, (), conflict)
    return Located(name, found[0], tuple(found[1:]), conflict)
