"""The Loader: resolve a secret by name through the precedence chain, and keep it live.

File-backed values are cached by what one ``os.stat`` (following links) says about the
file: on a kubelet volume every rotation changes the key's inode and mtime, so ``get()``
re-reads exactly when the file changed. A re-read that fails keeps the last good value,
logs one warning and records the error for ``explain()`` and health checks.

Threading: a Loader may be shared by any number of threads. ``get``/``require`` take no
lock on a cache hit; misses are serialised per Loader.
"""

from __future__ import annotations

import os
from _thread import RLock  # what threading.RLock is, without importing threading

from ._log import logger
from .errors import ConflictError, MissingSecretError, ProviderError, SecretError
from .explanation import Explanation
from .files import DEFAULT_MAX_BYTES, FileIdentity, decode_secret, read_secret_file
from .secret import Secret
from .sources import (
    ConflictPolicy,
    Located,
    Origin,
    Provider,
    directories,
    env_text,
    locate,
    normalize_name,
)

# No typing, dataclasses, logging or threading at import: ``import agentos_secrets`` must
# stay within 20 ms of a bare interpreter (see benchmarks/bench_import.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import overload

__all__ = ["Explanation", "Loader"]

_CONFLICT_POLICIES = ("warn", "error", "prefer-file")


class _CacheEntry:
    """The last good read of one file, and the last error seen re-reading it."""

    __slots__ = ("error", "error_identity", "identity", "origin", "secret")

    def __init__(
        self,
        origin: Origin,
        identity: FileIdentity,
        secret: Secret,
        error: SecretError | None = None,
        error_identity: FileIdentity | None = None,
    ) -> None:
        self.origin = origin
        self.identity = identity
        self.secret = secret
        self.error = error
        self.error_identity = error_identity


class Loader:
    """Resolve secrets by name: ``NAME``, ``NAME_FILE``, secret directories, a provider.

    :param env: the environment to read (default: ``os.environ``, read live).
    :param secret_dirs: directories holding one file per secret (a kubelet Secret volume,
        a docker secrets dir), searched in order; ``$CREDENTIALS_DIRECTORY`` is searched
        after them when set (``use_credentials_directory=False`` turns that off).
    :param provider: a callable ``name -> str | bytes | Secret | None``, consulted last.
    :param on_conflict: what to do when ``NAME`` and ``NAME_FILE`` are both set:
        ``"warn"`` (``NAME`` wins, one warning), ``"error"`` or ``"prefer-file"``.
    :param strip: trim surrounding whitespace (as the original Go loader); ``False`` keeps
        file content byte-exact (PEM, binary-safe UTF-8).
    :param max_bytes: the largest secret file accepted.
    :param check_permissions: refuse files writable by group or others.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        secret_dirs: Sequence[str | os.PathLike[str]] = (),
        provider: Provider | None = None,
        on_conflict: ConflictPolicy = "warn",
        *,
        strip: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        check_permissions: bool = True,
        use_credentials_directory: bool = True,
    ) -> None:
        if on_conflict not in _CONFLICT_POLICIES:
            raise ValueError(
                f"on_conflict must be one of {', '.join(_CONFLICT_POLICIES)}, not {on_conflict!r}"
            )
        if isinstance(secret_dirs, str | bytes | os.PathLike):
            secret_dirs = [secret_dirs]  # type: ignore[list-item]
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._secret_dirs = tuple(os.fspath(d) for d in secret_dirs)
        self._use_credentials_directory = use_credentials_directory
        self._provider = provider
        self.on_conflict: ConflictPolicy = on_conflict
        self.strip = strip
        self.max_bytes = max_bytes
        self.check_permissions = check_permissions
        self._cache: dict[str, _CacheEntry] = {}
        self._lock = RLock()
        self._warned_conflicts: set[str] = set()

    # -- public API ---------------------------------------------------------------------
    @property
    def secret_dirs(self) -> tuple[str, ...]:
        """The directories searched, in order, including ``$CREDENTIALS_DIRECTORY``."""
        return directories(self._secret_dirs, self._env, self._use_credentials_directory)

    if TYPE_CHECKING:  # the overloads are for type checkers; typing is not imported

        @overload
        def get(self, name: str) -> Secret | None: ...
        @overload
        def get(self, name: str, default: Secret) -> Secret: ...
        @overload
        def get(self, name: str, default: None) -> Secret | None: ...

    def get(self, name: str, default: Secret | None = None) -> Secret | None:
        """The current value of ``name``, or ``default`` when no source has it.

        Errors in the source that answers (an unreadable ``NAME_FILE``, a conflict under
        ``on_conflict="error"``) raise; they never fall through to a later source.
        """
        secret = self._resolve(normalize_name(name))
        return default if secret is None else secret

    def require(self, name: str) -> Secret:
        """The current value of ``name``; ``MissingSecretError`` when no source has it."""
        key = normalize_name(name)
        secret = self._resolve(key)
        if secret is None:
            raise MissingSecretError(f"secret {key} is required but missing", variable=key)
        return secret

    def explain(self, name: str) -> Explanation:
        """Where ``name`` comes from, what it shadows, and any error; never the value.

        Unlike ``get`` it does not raise for a broken source: the error is reported.
        """
        key = normalize_name(name)
        located = self._locate(key, exhaustive=True)
        shadowed = tuple(o.describe() for o in located.shadowed)
        conflict = None
        if located.conflict:
            conflict = f"{key} and {key}_FILE are both set; on_conflict={self.on_conflict!r}"
        notes: list[str] = []
        try:
            secret = self._resolve(key, located=located, quiet=True)
        except SecretError as exc:
            origin = located.chosen
            return Explanation(
                name=key,
                found=False,
                source=origin.kind if origin else None,
                variable=origin.variable if origin else None,
                path=origin.path if origin else None,
                rotates=bool(origin and origin.rotates),
                shadowed=shadowed,
                conflict=conflict,
                error=str(exc),
            )
        origin = located.chosen
        if secret is None or origin is None:
            return Explanation(name=key, found=False, shadowed=shadowed, conflict=conflict)
        error = None
        if origin.path is not None:
            entry = self._cache.get(origin.path)
            if entry is not None and entry.error is not None:
                error = str(entry.error)
                notes.append("the last re-read failed; the last good value is kept")
        return Explanation(
            name=key,
            found=True,
            source=origin.kind,
            variable=origin.variable,
            path=origin.path,
            rotates=origin.rotates,
            shadowed=shadowed,
            conflict=conflict,
            error=error,
            fingerprint=secret.fingerprint(),
            notes=tuple(notes),
        )

    def errors(self) -> dict[str, str]:
        """Re-read errors currently masked by a kept last good value, by path."""
        return {p: str(e.error) for p, e in list(self._cache.items()) if e.error is not None}

    # -- resolution ---------------------------------------------------------------------
    def _locate(self, name: str, *, exhaustive: bool = False) -> Located:
        return locate(
            name,
            self._env,
            self.secret_dirs,
            self._provider is not None,
            self.on_conflict,
            exhaustive=exhaustive,
        )

    def _resolve(
        self, name: str, *, located: Located | None = None, quiet: bool = False
    ) -> Secret | None:
        if located is None:
            located = self._locate(name)
        if located.conflict:
            self._conflict(name, quiet)
        origin = located.chosen
        if origin is None:
            return None
        if origin.kind == "env":
            raw = env_text(self._env, name) or ""
            # surrogateescape: undecodable bytes in os.environ become a SecretEncodingError
            raw_bytes = raw.encode("utf-8", "surrogateescape")
            data = decode_secret(raw_bytes, variable=name, path=None, strip=True)
            logger.debug("resolved secret %s from env", name)
            return Secret(data, name=name, source="env")
        if origin.kind == "provider":
            return self._from_provider(name)
        assert origin.path is not None
        return self._read_file(name, origin)

    def _conflict(self, name: str, quiet: bool) -> None:
        if self.on_conflict == "error":
            raise ConflictError(
                f"{name} and {name}_FILE are both set; set only one", variable=name
            )
        if quiet or name in self._warned_conflicts:
            return
        self._warned_conflicts.add(name)
        winner = f"{name}_FILE" if self.on_conflict == "prefer-file" else name
        logger.warning(
            "secret %s: both %s and %s_FILE are set; using %s", name, name, name, winner
        )

    def _from_provider(self, name: str) -> Secret | None:
        assert self._provider is not None
        failure: str | None = None
        try:
            value = self._provider(name)
        except SecretError:
            raise
        except Exception as exc:  # noqa: BLE001 - any provider failure is wrapped
            failure = type(exc).__name__
        if failure is not None:
            # Raised outside the except block so that the provider's exception is not
            # even kept as __context__: its message or args may quote the value.
            raise ProviderError(
                f"provider failed for secret {name} ({failure})", variable=name
            )
        if value is None:
            return None
        if isinstance(value, Secret):
            value = value.reveal_bytes()
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        if not isinstance(value, bytes):
            raise ProviderError(
                f"provider returned {type(value).__name__} for secret {name};"
                " expected str, bytes, Secret or None",
                variable=name,
            )
        data = decode_secret(value, variable=name, path=None, strip=self.strip)
        logger.debug("resolved secret %s from provider", name)
        return Secret(data, name=name, source="provider")

    def _read_file(self, name: str, origin: Origin) -> Secret:
        path = origin.path
        assert path is not None
        entry = self._cache.get(path)
        if entry is not None:
            try:
                identity: FileIdentity | None = FileIdentity.of(os.stat(path))
            except OSError:
                identity = None
            if identity == entry.identity:
                return entry.secret
        with self._lock:
            return self._reread(name, origin, path)

    def _reread(self, name: str, origin: Origin, path: str) -> Secret:
        entry = self._cache.get(path)
        variable = origin.variable
        try:
            data, identity = read_secret_file(
                path,
                variable=variable,
                max_bytes=self.max_bytes,
                strip=self.strip,
                check_permissions=self.check_permissions,
            )
        except SecretError as exc:
            if entry is None or entry.origin != origin:
                raise
            # Keep the last good value; warn once per failing version of the file.
            try:
                failing: FileIdentity | None = FileIdentity.of(os.stat(path))
            except OSError:
                failing = None
            if entry.error is None or entry.error_identity != failing:
                logger.warning(
                    "secret %s: re-reading %s failed (%s); keeping the last good value",
                    name,
                    path,
                    exc.code,
                )
            entry.error = exc
            entry.error_identity = failing
            return entry.secret
        if entry is not None and entry.identity == identity and entry.origin == origin:
            entry.error = None
            return entry.secret
        secret = Secret(data, name=name, source=origin.kind)
        if entry is not None and entry.origin == origin and entry.secret != secret:
            logger.info("secret %s changed (%s)", name, path)
            self._replaced(name, entry.secret)
        elif entry is None:
            logger.debug("resolved secret %s from %s", name, origin.kind)
        self._cache[path] = _CacheEntry(origin, identity, secret)
        return secret

    def _replaced(self, name: str, old: Secret) -> None:
        """Called when a rotation replaced ``old`` (hook for the grace window)."""
