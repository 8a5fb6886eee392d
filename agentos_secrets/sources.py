"""The precedence chain: where a secret named ``NAME`` comes from, and its value.

1. ``NAME``, when non-empty after trimming (whitespace-only counts as unset);
2. ``NAME_FILE``, when non-empty: a hard error if the file cannot be read;
3. each secret directory in order, then ``$CREDENTIALS_DIRECTORY`` (systemd credentials):
   a file named ``NAME`` (dot-entries are never keys);
4. the provider, a callable from name to value;
5. missing.

``NAME`` and ``NAME_FILE`` both set is a conflict resolved by ``on_conflict``:
``"warn"`` (``NAME`` wins, one warning), ``"error"`` or ``"prefer-file"``.

:class:`Chain` is one Loader's configured chain. ``Chain.resolve`` decides where a name
comes from *and* produces its value (or the error): it decodes environment values, calls
the provider and hands file origins to the reader it is given (the Loader passes its live
cache's, ``cache.LiveCache.read``, which reads through ``files``). It never caches.
"""

from __future__ import annotations

import errno
import os
import sys

from ._log import logger
from .errors import ConflictError, InvalidNameError, ProviderError
from .files import decode_secret
from .origin import Located, Origin
from .secret import Secret

# typing.TYPE_CHECKING without importing typing: ``import agentos_secrets`` must stay cheap
# (typing, re and dataclasses together cost several milliseconds at start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, Literal

    #: Reads the file an origin names: ``(name, origin) -> Secret`` (the live cache's).
    FileReader = Callable[[str, "Origin"], Secret]

__all__ = [
    "CONFLICT_POLICIES",
    "CREDENTIALS_DIRECTORY_VAR",
    "Chain",
    "ConflictPolicy",
    "Located",
    "Origin",
    "Provider",
    "env_text",
    "normalize_name",
]

if TYPE_CHECKING:
    ConflictPolicy = Literal["warn", "error", "prefer-file"]
    Provider = Callable[[str], "str | bytes | object | None"]
else:
    # Runtime stand-ins so that ``from .sources import ConflictPolicy`` keeps working;
    # the precise types above are for type checkers only.
    ConflictPolicy = str
    Provider = object

CONFLICT_POLICIES = ("warn", "error", "prefer-file")
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


def _lexists(path: str) -> bool:
    """``os.path.lexists`` through ``readlink``: cheap for a kubelet key (a symlink)."""
    try:
        os.readlink(path)
    except OSError as exc:
        return exc.errno == errno.EINVAL  # readlink's "not a symlink": it exists
    except ValueError:  # an embedded NUL
        return False
    return True


# faccessat(AT_SYMLINK_NOFOLLOW) answers "does the path exist" as lexists does (a dangling
# symlink exists; ENOENT, ENOTDIR, EACCES, ELOOP are misses) without raising on a miss or
# building a stat_result: on a plain directory of files, where readlink fails with EINVAL
# on every key, that exception was most of the gap to a plain open() loop. Used only where
# the libc and kernel support the flags (faccessat2; musl on an older kernel refuses them
# with EINVAL, which os.access reports as False): "/" must be seen to exist.
_ACCESS_FLAGS: dict[str, bool] = {"follow_symlinks": False}
if os.access in os.supports_effective_ids:
    _ACCESS_FLAGS["effective_ids"] = True  # the effective ids, as open() uses


def _accessible(path: str, _access: Any = os.access, _f: int = os.F_OK) -> bool:
    try:
        return _access(path, _f, **_ACCESS_FLAGS)
    except ValueError:  # an embedded NUL
        return False


_exists = _lexists
if os.access in os.supports_follow_symlinks and _accessible("/"):
    _exists = _accessible


def _text_bytes(text: str) -> bytes:
    """The bytes of a value given as text, never raising.

    ``surrogateescape`` gives back the bytes ``os.environ`` escaped (not UTF-8, so
    ``decode_secret`` rejects them with the right offset). A lone surrogate it cannot
    encode (from a custom mapping or a provider) becomes non-UTF-8 bytes the same way,
    rather than a ``UnicodeEncodeError``, whose ``object`` would carry the whole value.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class Chain:
    """One Loader's precedence chain: its environment, directories, provider and policy.

    Thread-safe: it holds no state but the set of conflicts already warned about.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None,
        secret_dirs: Sequence[str | os.PathLike[str]],
        provider: Provider | None,
        on_conflict: ConflictPolicy,
        *,
        strip: bool,
        use_credentials_directory: bool,
    ) -> None:
        if on_conflict not in CONFLICT_POLICIES:
            raise ValueError(
                f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {on_conflict!r}"
            )
        if isinstance(secret_dirs, str | bytes | os.PathLike):
            secret_dirs = [secret_dirs]  # type: ignore[list-item]
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.secret_dirs = tuple(os.fspath(d) for d in secret_dirs)
        self.use_credentials_directory = use_credentials_directory
        self.provider = provider
        self.on_conflict: ConflictPolicy = on_conflict
        self.strip = strip
        self._warned: set[str] = set()
        #: Where raw environment values are read from: ``marks`` hold these keys and
        #: values, and the fast path compares them with one dictionary lookup each.
        self.lookup: Mapping[Any, Any] = self.env
        self._encoding: str | None = None
        data = getattr(self.env, "_data", None)
        if self.env is os.environ and os.name == "posix" and isinstance(data, dict):
            # os.environ.get(KEY) encodes the key and, for an unset variable (the usual
            # case: NAME unset, NAME_FILE set), raises and catches KeyError inside: about
            # 0.5 us each, as much as the os.stat the hot path exists to be close to. Its
            # backing dict of encoded bytes (kept in step by os.environ itself) gives the
            # same answer from one lookup, encoded and decoded exactly as os.environ does.
            self.lookup = data
            self._encoding = sys.getfilesystemencoding()

    def _raw(self, variable: str) -> tuple[tuple[Any, Any], str | None]:
        """((key, raw value), value) of one variable: the mark and the text it stands for."""
        encoding = self._encoding
        if encoding is None:
            value = self.lookup.get(variable)
            return (variable, value), value
        key = variable.encode(encoding, "surrogateescape")
        raw = self.lookup.get(key)
        return (key, raw), None if raw is None else raw.decode(encoding, "surrogateescape")

    def directories(self) -> tuple[str, ...]:
        """The directories searched, in order; ``$CREDENTIALS_DIRECTORY`` (read live) last."""
        return self._directories()[0]

    def _directories(self) -> tuple[tuple[str, ...], tuple[Any, Any] | None]:
        dirs = self.secret_dirs
        if not self.use_credentials_directory:
            return dirs, None
        mark, creds = self._raw(CREDENTIALS_DIRECTORY_VAR)
        if creds is not None:
            creds = creds.strip()
            if creds and creds not in dirs:
                return (*dirs, creds), mark
        return dirs, mark

    def locate(self, name: str, *, exhaustive: bool = False) -> Located:
        """Walk the chain for an already-normalised ``name``; nothing is read.

        With ``exhaustive=False`` it stops at the first source that answers; with
        ``exhaustive=True`` (``explain``) it also lists every lower source that is
        configured, as ``shadowed``. The provider is never called here.
        """
        # Origins are built with tuple.__new__ directly and env_text is inlined: this runs
        # once per cold lookup, and each Python-level call here costs as much as a syscall.
        new = tuple.__new__
        found: list[Origin] = []
        conflict = False
        name_mark, value = self._raw(name)
        file_var = name + FILE_SUFFIX
        file_mark, file_path = self._raw(file_var)
        marks: tuple[tuple[Any, Any], ...] = (name_mark, file_mark)
        absent: list[str] = []
        if value is not None and not value.isspace() and value:
            found.append(new(Origin, ("env", name, None, None)))
        if file_path is not None:
            file_path = file_path.strip()
        if file_path:
            origin = new(Origin, ("file", file_var, file_path, None))
            if found:
                conflict = True
                if self.on_conflict == "prefer-file":
                    found.insert(0, origin)
                else:
                    found.append(origin)
            else:
                found.append(origin)
        if not found or exhaustive:
            dirs, creds_mark = self._directories()
            for index, directory in enumerate(dirs):
                # os.path.join inlined (the same result for a valid name)
                if not directory or directory.endswith("/"):
                    path = directory + name
                else:
                    path = directory + "/" + name
                if not _exists(path):
                    if not found:
                        absent.append(path)
                    continue
                if not found and index >= len(self.secret_dirs):
                    marks = (name_mark, file_mark, creds_mark)  # decided by the variable
                found.append(new(Origin, ("directory", None, path, directory)))
                if not exhaustive:
                    break
        if self.provider is not None and (not found or exhaustive):
            found.append(new(Origin, ("provider", None, None, None)))
        if not found:
            return Located(name, None, (), conflict, marks)
        return Located(name, found[0], tuple(found[1:]), conflict, marks, tuple(absent))

    def resolve(
        self, name: str, read: FileReader, *, located: Located | None = None, quiet: bool = False
    ) -> tuple[Located, Secret | None]:
        """Where ``name`` comes from and its value (None: missing), or the source's error.

        ``read(name, origin)`` reads a file origin. ``quiet`` (``explain``) skips the
        conflict warning. An error in the source that answers raises; it never falls
        through to a later source.
        """
        if located is None:
            located = self.locate(name)
        if located.conflict:
            self.conflict(name, quiet=quiet)
        origin = located.chosen
        if origin is None:
            return located, None
        kind = origin[0]
        if kind == "env":
            return located, self._from_env(name)
        if kind == "provider":
            return located, self._from_provider(name)
        return located, read(name, origin)

    def conflict(self, name: str, *, quiet: bool = False) -> None:
        """Apply ``on_conflict`` to ``NAME`` and ``NAME_FILE`` both set: raise or warn once."""
        if self.on_conflict == "error":
            raise ConflictError(
                f"{name} and {name}_FILE are both set; set only one", variable=name
            )
        if quiet or name in self._warned:
            return
        self._warned.add(name)
        winner = f"{name}_FILE" if self.on_conflict == "prefer-file" else name
        logger.warning(
            "secret %s: both %s and %s_FILE are set; using %s", name, name, name, winner
        )

    def _from_env(self, name: str) -> Secret:
        raw = (self._raw(name)[1] or "").strip()
        # surrogateescape: undecodable bytes in os.environ become a SecretEncodingError
        data = decode_secret(_text_bytes(raw), variable=name, path=None, strip=True)
        logger.debug("resolved secret %s from env", name)
        return Secret(data, name=name, source="env")

    def _from_provider(self, name: str) -> Secret | None:
        assert self.provider is not None
        failure: str | None = None
        try:
            value = self.provider(name)  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - any provider failure is wrapped
            # A SecretError too: the provider wrote its message, which may quote a value.
            failure = type(exc).__name__
        if failure is not None:
            # Raised outside the except block so that the provider's exception is not
            # even kept as __context__: its message or args may quote the value.
            raise ProviderError(f"provider failed for secret {name} ({failure})", variable=name)
        if value is None:
            return None
        if isinstance(value, Secret):
            value = value.reveal_bytes()
        if isinstance(value, str):
            value = _text_bytes(value)
        if not isinstance(value, bytes):
            raise ProviderError(
                f"provider returned {type(value).__name__} for secret {name};"
                " expected str, bytes, Secret or None",
                variable=name,
            )
        data = decode_secret(value, variable=name, path=None, strip=self.strip)
        logger.debug("resolved secret %s from provider", name)
        return Secret(data, name=name, source="provider")
