"""The Loader: resolve a secret by name through the precedence chain, and keep it live.

This module is the public face; the work is done one module down, and a name crosses
from one to the next without coming back:

* ``cache`` (:class:`~agentos_secrets.cache.LiveCache`): the hot path of ``get()`` (one
  ``os.stat`` on a hit), file entries keyed by what ``os.stat`` says, racy entries,
  last good values and failure marks;
* ``sources`` (:class:`~agentos_secrets.sources.Chain`): on a miss, decides where the
  name comes from and produces the value or the error (the conflict policy, environment
  values, the provider), handing file origins to the cache's reader, which reads through
  ``files``;
* ``snapshot``, ``explanation``, ``grace`` and ``changes``: ``snapshot()``,
  ``explain()``, ``verify()`` and ``watch()``.

Threading: a Loader may be shared by any number of threads. ``get``/``require`` take no
lock on a cache hit; misses are serialised per Loader.
"""

from __future__ import annotations

import os
import time

from .cache import LiveCache
from .errors import MissingSecretError
from .explanation import Explanation
from .explanation import explain as _explain
from .files import DEFAULT_MAX_BYTES
from .grace import GraceWindow, VerifyCounts, as_bytes, match
from .snapshot import take
from .sources import Chain, normalize_name

# No typing, dataclasses, logging or threading at import: ``import agentos_secrets`` must
# stay within 20 ms of a bare interpreter (see benchmarks/bench_import.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import overload

    from .changes import ChangeCallback, SecretWatch
    from .grace import Match
    from .secret import Secret
    from .sources import ConflictPolicy, Provider

__all__ = ["Explanation", "Loader"]


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
    :param grace: seconds during which ``verify`` still accepts a value that a rotation
        seen by this Loader replaced (default 600, ten minutes; 0 turns it off).
    :param clock: a monotonic clock in seconds for the grace window (tests inject one).
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
        grace: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chain = Chain(
            env,
            secret_dirs,
            provider,
            on_conflict,
            strip=strip,
            use_credentials_directory=use_credentials_directory,
        )
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._grace = GraceWindow(grace, clock)
        self._verified = VerifyCounts()
        self._cache = LiveCache(
            self._chain.lookup,
            max_bytes=max_bytes,
            strip=strip,
            check_permissions=check_permissions,
            replaced=self._grace.record,
        )
        # Bound once: the hot path pays no attribute lookups for them.
        self._hit = self._cache.hit
        self._read = self._cache.read

    # -- settings (read-only) -----------------------------------------------------------
    @property
    def secret_dirs(self) -> tuple[str, ...]:
        """The directories searched, in order, including ``$CREDENTIALS_DIRECTORY``."""
        return self._chain.directories()

    @property
    def on_conflict(self) -> ConflictPolicy:
        return self._chain.on_conflict

    @property
    def strip(self) -> bool:
        return self._cache.strip

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    @property
    def check_permissions(self) -> bool:
        return self._cache.check_permissions

    # -- public API ---------------------------------------------------------------------
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
        secret = self._hit(name)
        if secret is None:
            secret = self._resolve(normalize_name(name))
        return default if secret is None else secret

    def require(self, name: str) -> Secret:
        """The current value of ``name``; ``MissingSecretError`` when no source has it."""
        secret = self._hit(name)
        if secret is not None:
            return secret
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
        return _explain(key, self._chain, self._read, self._cache.error_of, self._grace)

    def errors(self) -> dict[str, str]:
        """Re-read errors currently masked by a kept last good value, by path."""
        return self._cache.errors()

    def snapshot(self, names: Iterable[str], *, required: bool = True) -> dict[str, Secret]:
        """The values of ``names`` as one consistent set: ``{name: Secret}``.

        Keys of a kubelet Secret volume (found in a secret directory, or named by a
        ``NAME_FILE`` path inside one) are read from the one generation ``..data`` points
        at, and read again if it changed meanwhile: a username and a password rotated
        together are never seen half old, half new. Other names resolve as ``get()``
        does. A missing name raises ``MissingSecretError`` (listing every missing name)
        unless ``required=False``, which leaves it out of the result. A broken key in the
        current generation raises its error: the snapshot does not mix in a kept value.
        """
        keys = list(dict.fromkeys(normalize_name(n) for n in names))
        return take(keys, self._chain, self._read, self._read_raw, required=required)

    def verify(self, name: str, presented: str | bytes | Secret) -> Match | None:
        """Which accepted value of ``name`` equals ``presented``: ``"current"``,
        ``"previous"`` or None.

        Accepted: the current value (resolved as ``get()`` does, so this call itself
        notices a rotation); every value a rotation seen by this Loader replaced, for
        ``grace`` seconds after it; and an explicit ``NAME_PREVIOUS`` (with the same
        rules: ``NAME_PREVIOUS_FILE``, secret directories, provider). Every accepted
        value is compared, in constant time, whatever matched first. ``presented`` may
        be ``str`` (UTF-8), ``bytes`` or a ``Secret``; it is compared byte-exact (not
        trimmed). Raises ``MissingSecretError`` when ``name`` has no accepted value at
        all (a misconfiguration, not a rejected caller). Each answer is counted (see
        :meth:`verify_counts`).
        """
        key = normalize_name(name)
        data = as_bytes(presented)
        candidates: list[tuple[Match, Secret]] = []
        current = self.get(key)
        if current is not None:
            candidates.append(("current", current))
        candidates.extend(("previous", old) for old in self._grace.previous(key))
        explicit = self.get(key + "_PREVIOUS")
        if explicit is not None:
            candidates.append(("previous", explicit))
        if not candidates:
            raise MissingSecretError(
                f"secret {key} has no accepted value to verify against"
                f" (neither {key} nor {key}_PREVIOUS is set)",
                variable=key,
            )
        result = match(data, candidates)
        self._verified.record(key, result)
        return result

    def verify_counts(self) -> dict[tuple[str, str], int]:
        """How often ``verify`` answered, by (name, result): result is ``"current"``,
        ``"previous"`` or ``"none"`` (no accepted value matched); every result is listed,
        0 included, for each name verified so far. A call that raised is not counted.
        ``agentos_secrets.prometheus`` exposes these as ``agentos_secrets_verify_total``.
        """
        return self._verified.counts()

    def verify_last_previous(self) -> dict[str, float]:
        """When ``verify`` last answered ``"previous"``, by name (Unix time, seconds).

        A rotation's old value is still in use while this keeps moving; once it stays
        put for a quiet period, no caller sends the old value any more.
        """
        return self._verified.last_previous()

    def watch(
        self,
        callback: ChangeCallback,
        names: Iterable[str] | None = None,
        *,
        debounce: float = 0.1,
        max_wait: float = 2.0,
        resync: float = 60.0,
    ) -> SecretWatch:
        """Call ``callback(name, old_fingerprint, new_fingerprint)`` on each real change.

        ``names`` defaults to every name this Loader has resolved so far. Directories
        are watched non-recursively (watchdog/inotify); events are only hints, confirmed
        by re-reading the value; changes within ``debounce`` seconds (at most
        ``max_wait``) are coalesced; every ``resync`` seconds a re-check runs anyway.
        Callbacks run one at a time on the thread ``agentos-secrets-watch``. Returns a
        started :class:`~agentos_secrets.changes.SecretWatch`: call ``stop()`` or use it
        in a ``with`` block. See ``changes.py`` for the threading guarantees.
        """
        from .changes import SecretWatch  # watchdog and threading load only here

        seen = self._cache.seen
        chosen = list(seen) if names is None else [normalize_name(n) for n in names]
        handle = SecretWatch(
            self, callback, chosen, debounce=debounce, max_wait=max_wait, resync=resync
        )
        return handle.start()

    # -- one level down -----------------------------------------------------------------
    def _resolve(self, key: str) -> Secret | None:
        """A miss: the chain decides and reads; the cache remembers how to hit next time."""
        located, secret = self._chain.resolve(key, self._read)
        if secret is not None and located.chosen is not None:
            if located.chosen[0] != "provider":
                self._cache.remember(key, located, secret)
        return secret

    def _path_of(self, name: str) -> str | None:
        """The file that ``name`` resolves to now, or None (env, provider, missing)."""
        origin = self._chain.locate(normalize_name(name)).chosen
        return origin.path if origin is not None else None

    def _read_raw(self, path: str, variable: str | None) -> bytes:
        """One uncached safe read (``snapshot``'s generation reads go through here)."""
        return self._cache.read_raw(path, variable)
