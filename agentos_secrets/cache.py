"""The Loader's live cache: file-backed values that follow their file.

File-backed values are cached by what one ``os.stat`` (following links) says about the
file: on a kubelet volume every rotation changes the key's inode and mtime, so a lookup
re-reads exactly when the file changed. A re-read that fails keeps the last good value,
logs one warning and records the error (``errors()``, for ``explain()`` and health
checks); the version that failed is not read again until the file changes (its
*failure mark*, which includes ``ctime``, so a repairing chmod counts as a change).

A file written less than ``RACY_SECONDS`` before it was read is "racy" (as git calls
it): a second write within the same timestamp tick would leave size and mtime unchanged,
so such an entry is re-read and compared by content until it has aged. Kubelet rotations
create new inodes and are never affected; in-place writers are.

The hot path, :meth:`LiveCache.hit`, is one ``os.stat`` plus a few dictionary lookups: it
re-checks only the environment variables and earlier directories that decided where the
value comes from (the ``marks`` and ``absent`` paths of :class:`~agentos_secrets.origin.
Located`), so a cached ``get()`` costs at most about two ``os.stat`` calls.

A first read that fails inside a kubelet volume because the volume was swapped during it
(the old generation deleted between resolving ``..data`` and opening the key) is read
again, while ``..data`` keeps moving, at most ``SWAP_ATTEMPTS`` times.

Threading: ``hit`` takes no lock; reads are serialised per cache.
"""

from __future__ import annotations

import os
import time
from _thread import RLock  # what threading.RLock is, without importing threading

from ._log import logger
from .errors import SecretError, SecretFileNotFoundError
from .files import FileIdentity, current_generation, read_secret_file, volume_of
from .secret import Secret

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import cost)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .origin import Located, Origin

__all__ = ["RACY_SECONDS", "SWAP_ATTEMPTS", "LiveCache", "read_settled"]

#: A file modified less than this before it was read may change again without a new
#: size or mtime (coarse timestamps): it is re-read until it is older than this.
RACY_SECONDS = 2.0
_RACY_NS = int(RACY_SECONDS * 1e9)

#: How many times a read that lost a race with a kubelet swap is tried in all.
SWAP_ATTEMPTS = 10


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


def read_settled(
    path: str,
    *,
    variable: str | None,
    max_bytes: int,
    strip: bool,
    check_permissions: bool,
    attempts: int = SWAP_ATTEMPTS,
) -> tuple[bytes, FileIdentity]:
    """``files.read_secret_file``, read again when a kubelet swap made it miss the file.

    Opening ``DIR/KEY`` resolves ``KEY -> ..data/KEY`` and ``..data`` to a generation
    the kubelet may delete the next moment: the open then fails with ENOENT (a
    "dangling symlink") although the volume is whole. So a not-found error on a key of
    a kubelet volume is retried: once, then again only while ``..data`` keeps changing
    between two failed attempts. A key that is really missing fails twice against the
    same generation and raises; other errors raise at once.
    """
    seen: str | None = None
    failure: SecretFileNotFoundError | None = None
    for attempt in range(attempts):
        try:
            return read_secret_file(
                path,
                variable=variable,
                max_bytes=max_bytes,
                strip=strip,
                check_permissions=check_permissions,
            )
        except SecretFileNotFoundError as exc:
            failure = exc
        volume = volume_of(path)
        if volume is None:
            break
        generation = current_generation(volume[0])
        if attempt and generation == seen:
            break  # the volume held still through a whole failed read: that is its truth
        seen = generation
    assert failure is not None
    raise failure


class _CacheEntry:
    """The last good read of one file, and the last error seen re-reading it."""

    __slots__ = ("error", "error_identity", "identity", "origin", "racy", "secret")

    def __init__(self, origin: Origin, identity: FileIdentity, secret: Secret) -> None:
        self.origin = origin
        self.identity = identity
        self.secret = secret
        self.error: SecretError | None = None
        self.error_identity: tuple[int, ...] | None = None
        self.racy = _is_racy(identity)


class _FastPath:
    """What ``hit()`` must re-check before trusting the cache for one name.

    ``env``: (variable, raw value) pairs read when locating, so any change to them
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


class LiveCache:
    """One Loader's cache of resolved values, file entries by path, fast paths by name.

    :param lookup: the mapping the ``marks`` of a :class:`Located` were read from
        (``Chain.lookup``), re-read by ``hit``.
    :param replaced: called with ``(name, old_secret)`` when a re-read found a new value
        (the Loader's grace window).
    """

    def __init__(
        self,
        lookup: Mapping[Any, Any],
        *,
        max_bytes: int,
        strip: bool,
        check_permissions: bool,
        replaced: Callable[[str, Secret], None],
    ) -> None:
        self.max_bytes = max_bytes
        self.strip = strip
        self.check_permissions = check_permissions
        self._lookup = lookup
        self._replaced = replaced
        self._entries: dict[str, _CacheEntry] = {}
        self._fast: dict[str, _FastPath] = {}
        self._lock = RLock()
        #: Every name remembered so far, in order (``Loader.watch``'s default).
        self.seen: dict[str, None] = {}

    def hit(self, name: str) -> Secret | None:
        """The cached value if nothing that decides it changed, else None.

        One ``os.stat`` (following links) for a file-backed value, plus a dictionary
        lookup per deciding environment variable; None sends the caller down the full
        resolution, which calls :meth:`remember` to rebuild this fast path.
        """
        try:
            fast = self._fast.get(name)
        except TypeError:  # unhashable, so not a name: normalize_name says why
            return None
        if fast is None:
            return None
        lookup = self._lookup
        for variable, raw in fast.env:
            if lookup.get(variable) != raw:
                return None
        for path in fast.absent:
            if os.path.lexists(path):
                return None
        entry = fast.entry
        if entry is None:
            return fast.secret
        if entry.racy or entry.error is not None or self._entries.get(fast.path) is not entry:
            return None
        try:
            st = os.stat(fast.path)  # type: ignore[arg-type]
        except OSError:
            return None
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != entry.identity:
            return None
        return entry.secret

    def remember(self, name: str, located: Located, secret: Secret) -> None:
        """Build the fast path of ``name`` after a full resolution of it."""
        self.seen[name] = None
        origin = located.chosen
        assert origin is not None
        entry: _CacheEntry | None = None
        if origin[0] != "env":
            entry = self._entries.get(origin[2] or "")
            if entry is None or entry.secret is not secret or entry.error is not None:
                self._fast.pop(name, None)
                return
        self._fast[name] = _FastPath(located.marks, located.absent, origin[2], entry, secret)

    def errors(self) -> dict[str, str]:
        """Re-read errors currently masked by a kept last good value, by path."""
        return {p: str(e.error) for p, e in list(self._entries.items()) if e.error is not None}

    def error_of(self, path: str) -> SecretError | None:
        """The re-read error masked by the kept value of ``path``, if any."""
        entry = self._entries.get(path)
        return None if entry is None else entry.error

    def read_raw(self, path: str, variable: str | None) -> bytes:
        """One safe read of ``path`` with this cache's settings, not cached (snapshots)."""
        return read_secret_file(
            path,
            variable=variable,
            max_bytes=self.max_bytes,
            strip=self.strip,
            check_permissions=self.check_permissions,
        )[0]

    def read(self, name: str, origin: Origin) -> Secret:
        """The value of the file ``origin`` names: cached while the file is unchanged."""
        path = origin[2]
        assert path is not None
        entry = self._entries.get(path)
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
        entry = self._entries.get(path)
        try:
            data, identity = read_settled(
                path,
                variable=origin[1],
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
        secret = Secret(data, name=name, source=origin[0])
        if entry is not None and entry.origin == origin and entry.secret != secret:
            logger.info("secret %s changed (%s)", name, path)
            self._replaced(name, entry.secret)
        elif entry is None:
            logger.debug("resolved secret %s from %s", name, origin[0])
        self._entries[path] = _CacheEntry(origin, identity, secret)
        return secret
