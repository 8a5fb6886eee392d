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

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidNameError

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

ConflictPolicy = Literal["warn", "error", "prefer-file"]
SourceKind = Literal["env", "file", "directory", "provider"]
Provider = Callable[[str], "str | bytes | object | None"]

CREDENTIALS_DIRECTORY_VAR = "CREDENTIALS_DIRECTORY"
FILE_SUFFIX = "_FILE"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_NAME = 255


def normalize_name(name: object) -> str:
    """Trim ``name`` and check it is a usable environment-variable name."""
    if not isinstance(name, str):
        raise InvalidNameError(
            f"secret name must be a string, not {type(name).__name__}"
        )
    trimmed = name.strip()
    if not trimmed:
        raise InvalidNameError("secret name is empty")
    if len(trimmed) > _MAX_NAME or not _NAME_RE.match(trimmed):
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


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value comes from. Safe to print: names and paths, never content."""

    kind: SourceKind
    variable: str | None = None
    path: str | None = None
    directory: str | None = None

    @property
    def rotates(self) -> bool:
        """File-backed values follow the file; env and provider values are static."""
        return self.kind in ("file", "directory")

    def describe(self) -> str:
        if self.kind == "env":
            return f"environment variable {self.variable}"
        if self.kind == "file":
            return f"file {self.path} (from {self.variable})"
        if self.kind == "directory":
            return f"file {self.path} (secret directory {self.directory})"
        return "provider"


def directories(
    secret_dirs: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    use_credentials_directory: bool,
) -> tuple[str, ...]:
    """The secret directories to search, in order, credentials directory last."""
    dirs = [os.fspath(d) for d in secret_dirs]
    if use_credentials_directory:
        creds = env_text(env, CREDENTIALS_DIRECTORY_VAR)
        if creds and creds not in dirs:
            dirs.append(creds)
    return tuple(dirs)


@dataclass(frozen=True, slots=True)
class Located:
    """The outcome of walking the chain for one name, before anything is read."""

    name: str
    chosen: Origin | None
    shadowed: tuple[Origin, ...]
    conflict: bool


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
    found: list[Origin] = []
    conflict = False
    if env_text(env, name) is not None:
        found.append(Origin("env", variable=name))
    file_var = name + FILE_SUFFIX
    file_path = env_text(env, file_var)
    if file_path is not None:
        if found:
            conflict = True
            if on_conflict == "prefer-file":
                found.insert(0, Origin("file", variable=file_var, path=file_path))
            else:
                found.append(Origin("file", variable=file_var, path=file_path))
        else:
            found.append(Origin("file", variable=file_var, path=file_path))
    if not found or exhaustive:
        for directory in dirs:
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                found.append(Origin("directory", path=path, directory=directory))
                if not exhaustive:
                    break
    if has_provider and (not found or exhaustive):
        found.append(Origin("provider"))
    chosen = found[0] if found else None
    return Located(name, chosen, tuple(found[1:]), conflict)
