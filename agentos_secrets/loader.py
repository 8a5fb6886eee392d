"""The Loader: resolve a secret by name through the precedence chain, and keep it live.

File-backed values are cached by what one ``os.stat`` (following links) says about the
file: on a kubelet volume every rotation changes the key's inode and mtime, so ``get()``
re-reads exactly when the file changed. A re-read that fails keeps the last good value,
logs one warning and records the error for ``explain()`` and health checks.

A file written less than ``RACY_SECONDS`` before it was read is "racy" (as git calls
it): a second write within the same timestamp tick would leave size and mtime unchanged,
so such an entry is re-read and compared by content until it has aged. Kubelet rotations
create new inodes and are never affected; in-place writers are.

The hot path (a cache hit) is one ``os.stat`` plus a few dictionary lookups: it re-checks
only the environment variables and earlier directories that decided where the value
comes from (see ``_FastPath``), so ``get()`` costs at most about two ``os.stat`` calls.

Beyond ``get``: ``snapshot`` reads several keys from one kubelet generation
(``snapshot.py``), ``verify`` accepts the current value and, for a grace window, the
previous one (``grace.py``), ``watch`` calls back on real changes (``changes.py``).

Threading: a Loader may be shared by any number of threads. ``get``/``require`` take no
lock on a cache hit; misses are serialised per Loader.
"""

from __future__ import annotations

import os
import time
from _thread import RLock  # what threading.RLock is, without importing threading

from ._log import logger
from .errors import (
    ConflictError,
    MissingSecretError,
    ProviderError,
    SecretError,
    SecretFileNotFoundError,
)
from .explanation import Explanation
from .files import (
    DEFAULT_MAX_BYTES,
    FileIdentity,
    decode_secret,
    read_secret_file,
    shown_path,
)
from .grace import GraceWindow, as_bytes, match
from .secret import Secret
from .snapshot import read_generation, volume_of
from .sources import (
    CREDENTIALS_DIRECTORY_VAR,
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
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, overload

    from .changes import ChangeCallback, SecretWatch
    from .grace import Match

__all__ = ["Explanation", "Loader"]

_CONFLICT_POLICIES = ("warn", "error", "prefer-file")

#: A file modified less than this before it was read may change again without a new
#: size or mtime (coarse timestamps): it is re-read until it is older than this.
RACY_SECONDS = 2.0
_RACY_NS = int(RACY_SECONDS * 1e9)

#: How many times ``snapshot`` locates and reads again when a key vanished mid-rotation.
_SNAPSHOT_ATTEMPTS = 20


def _never_rotates(path: str) -> str | None:
    """Why the file at ``path`` can never change, or None: a single mounted file.

    That is what a Secret mounted with ``subPath`` looks like, and the kubelet never
    updates it (kubernetes issue 50345). ``watch.layout_of`` is the one place that knows.
    """
    from .watch import layout_of  # reads /proc/self/mountinfo; explain() only

    layout = layout_of(path)
    return layout.warning if layout.kind == "mounted-file" else None


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


def _failure_mark(st: os.stat_result | None) -> tuple[int, ...] | None:
    """What must change before a file version that failed to read is tried again.

    The identity plus ``st_ctime_ns``: a chmod or chown that repairs the file (group- or
    world-writable, unreadable) changes neither inode, mtime nor size, only ctime.
    """
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def _is_racy(identity: FileIdentity) -> bool:
    return abs(time.time_ns() - identity.mtime_ns) < _RACY_NS


class _FastPath:
    """What ``get()`` must re-check before trusting the cache for one name.

    ``env``: (variable, raw value) pairs read *before* locating, so any change to them
    since sends the call down the slow path; ``absent``: paths in earlier secret
    directories that must still not exist; ``entry``: the cache entry of the file
    (None for an env-backed value, held in ``secret``).
    """

    __slots__ = ("absent", "entry", "env", "path", "secret")

    def __init__(
        self,
        env: tuple[tuple[Any, Any], ...],
        absent: tuple[str, ...],
        path: str | None,
        entry: _CacheEntry | None,
        secret: Secret,
    ) -> None:
        self.env = env
        self.absent = absent
        self.path = path
        self.entry = entry
        self.secret = secret


class _CacheEntry:
    """The last good read of one file, and the last error seen re-reading it."""

    __slots__ = ("error", "error_identity", "identity", "origin", "racy", "secret")

    def __init__(
        self,
        origin: Origin,
        identity: FileIdentity,
        secret: Secret,
        error: SecretError | None = None,
        error_identity: tuple[int, ...] | None = None,
    ) -> None:
        self.origin = origin
        self.identity = identity
        self.secret = secret
        self.error = error
        self.error_identity = error_identity
        self.racy = _is_racy(identity)


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
        self._fast: dict[str, _FastPath] = {}
        self._marks_of: Mapping[Any, Any] = self._env
        self._encode_marks = False
        data = getattr(self._env, "_data", None)
        if self._env is os.environ and os.name == "posix" and isinstance(data, dict):
            # os.environ.get(KEY) encodes the key and, for an unset variable (the usual
            # case: NAME unset, NAME_FILE set), raises and catches KeyError inside: about
            # 0.5 us each, as much as the os.stat the hot path exists to be close to.
            # Its backing dict of encoded bytes (kept in step by os.environ itself) gives
            # the same answer from one dict lookup. Only for the hot path's equality marks.
            self._marks_of = data
            self._encode_marks = True
        self._seen: dict[str, None] = {}
        self._grace = GraceWindow(grace, clock)

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
        secret = self._cached(name)
        if secret is None:
            secret = self._resolve(normalize_name(name))
        return default if secret is None else secret

    def require(self, name: str) -> Secret:
        """The current value of ``name``; ``MissingSecretError`` when no source has it."""
        secret = self._cached(name)
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
                path=shown_path(origin.path) if origin and origin.path else None,
                rotates=bool(origin and origin.rotates),
                shadowed=shadowed,
                conflict=conflict,
                error=str(exc),
            )
        origin = located.chosen
        if secret is None or origin is None:
            return Explanation(name=key, found=False, shadowed=shadowed, conflict=conflict)
        error = None
        rotates = origin.rotates
        if origin.path is not None:
            entry = self._cache.get(origin.path)
            if entry is not None and entry.error is not None:
                error = str(entry.error)
                notes.append("the last re-read failed; the last good value is kept")
            frozen = _never_rotates(origin.path)
            if frozen is not None:
                rotates = False
                notes.append(frozen)
        kept = self._grace.count(key)
        if kept:
            notes.append(
                f"verify() also accepts {kept} value(s) replaced by a rotation in the last"
                f" {self._grace.grace:g} s"
            )
        previous = self._locate(key + "_PREVIOUS").chosen
        if previous is not None:
            notes.append(f"verify() also accepts {key}_PREVIOUS from {previous.describe()}")
        return Explanation(
            name=key,
            found=True,
            source=origin.kind,
            variable=origin.variable,
            path=origin.path,
            rotates=rotates,
            shadowed=shadowed,
            conflict=conflict,
            error=error,
            fingerprint=secret.fingerprint(),
            notes=tuple(notes),
        )

    def errors(self) -> dict[str, str]:
        """Re-read errors currently masked by a kept last good value, by path."""
        return {p: str(e.error) for p, e in list(self._cache.items()) if e.error is not None}

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
        for attempt in range(_SNAPSHOT_ATTEMPTS):
            try:
                result = self._snapshot_once(keys)
            except SecretFileNotFoundError:
                # A key vanished from the new generation; the kubelet removes its symlink
                # right after the swap, so locate again once it had time to.
                if attempt == _SNAPSHOT_ATTEMPTS - 1:
                    raise
                time.sleep(0.001 * (attempt + 1))
                continue
            break
        missing = [k for k in keys if k not in result]
        if missing and required:
            listed = ", ".join(missing)
            raise MissingSecretError(
                f"secret(s) {listed} required but missing", variable=missing[0]
            )
        return result

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
        all (a misconfiguration, not a rejected caller).
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
        return match(data, candidates)

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

        chosen = list(self._seen) if names is None else [normalize_name(n) for n in names]
        handle = SecretWatch(
            self, callback, chosen, debounce=debounce, max_wait=max_wait, resync=resync
        )
        return handle.start()

    # -- resolution ---------------------------------------------------------------------
    def _cached(self, name: str) -> Secret | None:
        """The hot path: the cached value if nothing that decides it changed, else None.

        One ``os.stat`` (following links) for a file-backed value, plus a dictionary
        lookup per deciding environment variable; None sends the caller down the full
        resolution, which also rebuilds this fast path.
        """
        try:
            fast = self._fast.get(name)
        except TypeError:  # unhashable, so not a name: normalize_name says why
            return None
        if fast is None:
            return None
        lookup = self._marks_of
        for variable, raw in fast.env:
            if lookup.get(variable) != raw:
                return None
        for path in fast.absent:
            if os.path.lexists(path):
                return None
        entry = fast.entry
        if entry is None:
            return fast.secret
        if entry.racy or entry.error is not None or self._cache.get(fast.path) is not entry:
            return None
        try:
            st = os.stat(fast.path)  # type: ignore[arg-type]
        except OSError:
            return None
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != entry.identity:
            return None
        return entry.secret

    def _env_marks(self, name: str) -> tuple[tuple[Any, Any], ...]:
        """(key, raw value) of each variable that decides where ``name`` comes from."""
        variables = [name, name + "_FILE"]
        if self._use_credentials_directory:
            variables.append(CREDENTIALS_DIRECTORY_VAR)
        lookup = self._marks_of
        keys = [os.fsencode(v) for v in variables] if self._encode_marks else variables
        return tuple((k, lookup.get(k)) for k in keys)

    def _remember(
        self,
        name: str,
        marks: tuple[tuple[Any, Any], ...],
        origin: Origin,
        secret: Secret,
    ) -> None:
        """Build the fast path for ``name`` after a full resolution."""
        self._seen[name] = None
        env = marks[:2]
        absent: tuple[str, ...] = ()
        entry: _CacheEntry | None = None
        if origin.kind == "directory":
            dirs = self.secret_dirs
            index = dirs.index(origin.directory) if origin.directory in dirs else 0
            if index:  # (no generator to build for the usual first directory)
                absent = tuple(os.path.join(d, name) for d in dirs[:index])
            if index >= len(self._secret_dirs):  # found in $CREDENTIALS_DIRECTORY
                env = marks
        if origin.kind != "env":
            entry = self._cache.get(origin.path or "")
            if entry is None or entry.secret is not secret or entry.error is not None:
                self._fast.pop(name, None)
                return
        self._fast[name] = _FastPath(env, absent, origin.path, entry, secret)

    def _path_of(self, name: str) -> str | None:
        """The file that ``name`` resolves to now, or None (env, provider, missing)."""
        origin = self._locate(normalize_name(name)).chosen
        return origin.path if origin is not None else None

    def _read_raw(self, path: str, variable: str | None) -> bytes:
        return read_secret_file(
            path,
            variable=variable,
            max_bytes=self.max_bytes,
            strip=self.strip,
            check_permissions=self.check_permissions,
        )[0]

    def _snapshot_once(self, keys: list[str]) -> dict[str, Secret]:
        result: dict[str, Secret] = {}
        volumes: dict[str, list[tuple[str, str, Origin]]] = {}
        for key in keys:
            located = self._locate(key)
            origin = located.chosen
            volume = volume_of(origin.path) if origin is not None and origin.path else None
            if volume is None or origin is None:
                secret = self._resolve(key, located=located)
                if secret is not None:
                    result[key] = secret
                continue
            if located.conflict:
                self._conflict(key, quiet=False)
            volumes.setdefault(volume[0], []).append((key, volume[1], origin))
        for directory, members in volumes.items():
            wanted = list({k: o.variable for _, k, o in members}.items())
            values = read_generation(directory, wanted, self._read_raw)
            for name, k, origin in members:
                result[name] = Secret(values[k], name=name, source=origin.kind)
        return result

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
        marks = None
        if located is None:
            marks = self._env_marks(name)  # before locating: a later change is noticed
            located = self._locate(name)
        if located.conflict:
            self._conflict(name, quiet)
        origin = located.chosen
        if origin is None:
            return None
        secret = self._resolve_origin(name, origin)
        if marks is not None and secret is not None and origin.kind != "provider":
            self._remember(name, marks, origin, secret)
        return secret

    def _resolve_origin(self, name: str, origin: Origin) -> Secret | None:
        if origin.kind == "env":
            raw = env_text(self._env, name) or ""
            # surrogateescape: undecodable bytes in os.environ become a SecretEncodingError
            raw_bytes = _text_bytes(raw)
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

    def _read_file(self, name: str, origin: Origin) -> Secret:
        path = origin.path
        assert path is not None
        entry = self._cache.get(path)
        st: os.stat_result | None = None
        if entry is not None and entry.origin == origin:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            identity = None if st is None else FileIdentity.of(st)
            if identity == entry.identity and not entry.racy:
                return entry.secret
            if entry.error is not None and _failure_mark(st) == entry.error_identity:
                return entry.secret  # this version already failed: no re-read per call
        with self._lock:
            return self._reread(name, origin, path, st)

    def _reread(
        self, name: str, origin: Origin, path: str, before: os.stat_result | None
    ) -> Secret:
        """Read ``path`` again; on failure keep the last good value.

        ``before`` is the stat taken before the read (None when there was none): a
        failure is remembered against it, never against a stat taken after the failure,
        which could already see the next version (a kubelet swap during the read) and
        would then keep the old value through that version.
        """
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
            failing = _failure_mark(before)
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
            entry.racy = _is_racy(identity)
            if entry.secret == data:
                return entry.secret
            # Same size and mtime, new content: a racy in-place rewrite caught.
        secret = Secret(data, name=name, source=origin.kind)
        if entry is not None and entry.origin == origin and entry.secret != secret:
            logger.info("secret %s changed (%s)", name, path)
            self._replaced(name, entry.secret)
        elif entry is None:
            logger.debug("resolved secret %s from %s", name, origin.kind)
        self._cache[path] = _CacheEntry(origin, identity, secret)
        return secret

    def _replaced(self, name: str, old: Secret) -> None:
        """Called when a rotation replaced ``old``: ``verify`` accepts it for a while."""
        self._grace.record(name, old)
