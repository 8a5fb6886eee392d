"""Change detection shared by the sidecar and ``Loader.watch``: hints, digests, layouts.

Three primitives, each with one job:

* :class:`DirectoryWatcher`: one *non-recursive* watchdog (inotify) watch per directory.
  Its events are only **hints** handed to a callback: the kubelet's atomic writer shows
  up as a move of ``..data_tmp`` onto ``..data`` (never a "created ``..data``"), and an
  in-place write as a modify or close-after-write. Opens, reads and close-without-write
  are left out of the kernel mask (watchdog ``event_filter``), so an app reading its
  secrets, or the kubelet's periodic re-check, wakes nobody; attribute changes (touch,
  chmod) are dropped by the emitter before any callback. A file
  path is watched through its directory: a watch on a key symlink or on ``..data`` dies
  after the first swap.
* :func:`digest` / :func:`combine`: the truth. A SHA-256 over the sorted (key, content)
  pairs of every entry not starting with a dot, key symlinks followed, each file read
  with :func:`agentos_secrets.files.read_secret_file` (no FIFO hangs, size capped). A
  touch, a chmod, an identical rewrite or a read leave the digest unchanged, so they
  cause nothing. The digest is kept in memory only and never printed: the slow, safe
  :func:`agentos_secrets.secret.fingerprint_bytes` is what may be shown or stored.
* :func:`layout_of`: whether a watched path can rotate at all. A plain file that is a
  mount point, or a file outside any kubelet volume, is what a ``subPath`` mount looks
  like: the kubelet never updates it (kubernetes issue 50345).

watchdog is imported only when a watcher starts, so ``import agentos_secrets`` stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import SecretFileError, SecretFileTooLargeError
from .files import DATA_LINK, is_kubelet_volume, read_bounded, read_secret_file

if TYPE_CHECKING:  # pragma: no cover
    from watchdog.observers.api import BaseObserver, ObservedWatch

__all__ = [
    "MAX_ENTRIES",
    "MAX_KEY_BYTES",
    "MAX_TOTAL_BYTES",
    "Digest",
    "DirectoryWatcher",
    "Hint",
    "Layout",
    "combine",
    "digest",
    "layout_of",
    "parse_mountinfo",
    "watch_directory",
]

logger = logging.getLogger("agentos_secrets.watch")

#: A Kubernetes Secret holds at most 1 MiB in total, so no key can be larger.
MAX_KEY_BYTES = 1024 * 1024


# -- targets ------------------------------------------------------------------------------


def watch_directory(path: str) -> str:
    """The directory to watch for ``path``: itself when a directory, else its parent."""
    path = os.path.abspath(path)
    return path if os.path.isdir(path) else os.path.dirname(path)


# -- digests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digest:
    """The content digest of one watched path. ``value`` must never be logged.

    ``problems`` name keys that could not be read (path and reason, never content); an
    unreadable key still contributes its error code, so "became unreadable" is a change.
    """

    path: str
    value: bytes
    keys: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Digest(path={self.path!r}, keys={len(self.keys)}, problems={len(self.problems)})"


def _feed(hasher: Any, label: bytes, data: bytes) -> None:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") can never collide.
    hasher.update(len(label).to_bytes(4, "big") + label)
    hasher.update(len(data).to_bytes(8, "big") + data)


#: How deep nested item directories are followed.
_MAX_NESTING = 8
#: Entries (keys, nested files and directories) hashed per watched path, at most. A
#: Secret has at most a few hundred keys; a directory with more is refused loudly.
MAX_ENTRIES = 4096
#: Bytes read per watched path and digest, at most (a Secret holds at most 1 MiB; a
#: projected volume a few of them).
MAX_TOTAL_BYTES = 32 * 1024 * 1024


class _Walk:
    """The state of one digest: what is left of the budget, the directories seen."""

    __slots__ = ("bytes_left", "entries_left", "exhausted", "hasher", "keys", "problems",
                 "seen")

    def __init__(self, hasher: Any, max_entries: int, max_total: int) -> None:
        self.hasher = hasher
        self.entries_left = max_entries
        self.bytes_left = max_total
        self.exhausted = False
        self.keys: list[str] = []
        self.problems: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def stop(self, problem: str) -> None:
        if not self.exhausted:
            self.exhausted = True
            self.problems.append(problem)
            _feed(self.hasher, b"\0", b"\0limit")


def _list_keys(directory: str, limit: int) -> list[str] | None:
    """The sorted names not starting with a dot, or None when there are more than ``limit``
    (read with ``scandir`` and stopped there, so a huge directory costs no memory)."""
    names: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                names.append(entry.name)
                if len(names) > limit:
                    return None
    except OSError:
        return []
    names.sort()
    return names


def digest(
    path: str,
    *,
    max_bytes: int = MAX_KEY_BYTES,
    max_entries: int = MAX_ENTRIES,
    max_total: int = MAX_TOTAL_BYTES,
) -> Digest:
    """Hash the keys of ``path`` (a directory) or the one key ``path`` names (a file).

    Dot-entries (``..data``, the hidden generations) are skipped; key symlinks are
    followed, so the digest is the content the app reads. Directories among the keys
    (nested items: a Secret volume's ``items[].path`` such as ``tls/tls.crt``) are hashed
    with everything in them, by relative path, so a rotation inside one is a change.
    Reads are done with the safe reader (non-blocking open, ``fstat`` of the descriptor
    read, size cap).

    Bounded whatever the directory holds: each directory (by device and inode) is
    entered once, so a link back to itself or to a parent cannot loop or fan out;
    nesting stops at 8 levels; at most ``max_entries`` entries and ``max_total`` bytes
    are hashed. Beyond a limit the digest says so in ``problems`` (the sidecar's
    ``unreadable_key`` warning) instead of reading on.
    """
    path = os.path.abspath(path)
    walk = _Walk(hashlib.sha256(), max_entries, max_total)
    if os.path.isdir(path):
        directory = path
        with contextlib.suppress(OSError):
            st = os.stat(path)
            walk.seen.add((st.st_dev, st.st_ino))
        names = _list_keys(path, max_entries)
        if names is None:
            walk.stop(f"{path}: more than {max_entries} entries; not hashed")
            names = []
    else:
        directory, names = os.path.dirname(path), [os.path.basename(path)]
    for name in names:
        if walk.exhausted:
            break
        _feed_key(walk, directory, name, max_bytes, 0)
    return Digest(path, walk.hasher.digest(), tuple(walk.keys), tuple(walk.problems))


def _feed_key(walk: _Walk, directory: str, name: str, max_bytes: int, depth: int) -> None:
    if walk.entries_left <= 0:
        walk.stop(f"{directory}: more than {MAX_ENTRIES} entries to hash; the rest is not")
        return
    walk.entries_left -= 1
    key_path = os.path.join(directory, name)
    label = name.encode("utf-8", "surrogateescape")
    try:
        st = os.stat(key_path)
    except OSError:
        st = None  # dangling or unreadable: the reader below says why
    if st is not None and stat.S_ISDIR(st.st_mode):
        identity = (st.st_dev, st.st_ino)
        if identity in walk.seen:
            _feed(walk.hasher, label, b"\0dir-seen")  # a link back: hashed once only
            return
        walk.seen.add(identity)
        _feed(walk.hasher, label, b"\0dir")
        if depth < _MAX_NESTING:
            children = _list_keys(key_path, walk.entries_left)
            if children is None:
                walk.stop(f"{key_path}: more entries than the limit of {MAX_ENTRIES}")
                return
            for child in children:
                if walk.exhausted:
                    return
                _feed_key(walk, directory, f"{name}/{child}", max_bytes, depth + 1)
        return
    if walk.bytes_left <= 0:
        walk.stop(f"{directory}: more than {MAX_TOTAL_BYTES} bytes to hash; the rest is not")
        return
    try:
        content, _ = read_secret_file(
            key_path,
            variable=None,
            max_bytes=min(max_bytes, walk.bytes_left),
            strip=False,
            check_permissions=False,
            validate=False,
        )
    except SecretFileTooLargeError as exc:
        if walk.bytes_left < max_bytes:  # over what is left of the budget, not the key cap
            walk.stop(f"{directory}: more than {MAX_TOTAL_BYTES} bytes to hash; the rest"
                      " is not")
            return
        error: SecretFileError = exc
    except SecretFileError as exc:
        error = exc
    else:
        walk.bytes_left -= len(content)
        walk.keys.append(name)
        _feed(walk.hasher, label, content)
        return
    _feed(walk.hasher, label, b"\0error:" + error.code.encode())
    walk.problems.append(str(error))


def combine(digests: Mapping[str, Digest] | Iterable[Digest]) -> bytes:
    """One digest over several watched paths, independent of their order.

    Feed the result to :func:`agentos_secrets.secret.fingerprint_bytes` once per
    confirmed change (never per event): that derivation is deliberately slow.
    """
    items = digests.values() if isinstance(digests, Mapping) else digests
    hasher = hashlib.sha256(b"agentos-secrets/watch/v1")
    for item in sorted(items, key=lambda d: d.path):
        _feed(hasher, item.path.encode("utf-8", "surrogateescape"), item.value)
    return hasher.digest()


# -- layouts ------------------------------------------------------------------------------

LayoutKind = Literal[
    "kubelet-volume", "kubelet-key", "directory", "file", "mounted-file", "missing"
]


@dataclass(frozen=True, slots=True)
class Layout:
    """What a watched path is, and whether the kubelet can rotate it."""

    path: str
    kind: LayoutKind
    warning: str | None = None

    @property
    def rotates(self) -> bool:
        return self.kind not in ("mounted-file", "file")


_OCTAL_RE = re.compile(r"\\([0-7]{3})")


def parse_mountinfo(text: str) -> set[str]:
    """The mount points (field 5) of a ``/proc/PID/mountinfo`` text.

    The kernel writes space, tab, newline and backslash in paths as octal escapes
    (``\\040``), which are decoded here.
    """
    points: set[str] = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _mount_points() -> set[str]:
    """Mount points of this process, or empty when ``/proc`` cannot say."""
    try:
        raw = read_bounded("/proc/self/mountinfo", what="mountinfo", max_bytes=4 * 1024 * 1024)
    except SecretFileError:
        return set()
    return parse_mountinfo(raw.decode("utf-8", "replace"))


def layout_of(path: str) -> Layout:
    """Classify ``path``; a layout that cannot rotate carries a warning saying why."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        if is_kubelet_volume(path):
            return Layout(path, "kubelet-volume")
        return Layout(path, "directory")
    if not os.path.lexists(path):
        return Layout(
            path, "missing", f"{path}: does not exist (yet); watching {os.path.dirname(path)}"
        )
    directory = os.path.dirname(path)
    if path in _mount_points():
        return Layout(
            path,
            "mounted-file",
            f"{path}: is a single mounted file (a subPath mount): the kubelet never updates"
            " it; mount the whole Secret volume and watch its directory",
        )
    if is_kubelet_volume(directory):
        if os.path.islink(path):
            return Layout(path, "kubelet-key")
        return Layout(
            path,
            "file",
            f"{path}: is a plain file inside a kubelet volume (not a link into {DATA_LINK}):"
            " it will not follow rotations",
        )
    return Layout(
        path,
        "file",
        f"{path}: is a plain file, not a key of a kubelet Secret volume (no {DATA_LINK} beside"
        " it); if it is a subPath mount it will never rotate: mount the whole volume",
    )


# -- hints --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hint:
    """Something may have changed in ``directory`` (``path``: the entry concerned)."""

    directory: str
    path: str


class DirectoryWatcher:
    """Non-recursive inotify watches over a set of directories; events become hints.

    ``on_hint`` runs on watchdog's dispatcher thread: keep it short (set a flag, put on a
    queue). :meth:`ensure` re-creates a watch whose directory disappeared or was replaced
    (a new inode), and reports a hint for it, since a change may have been missed; call
    it from the periodic re-check. Thread-safe.
    """

    def __init__(self, directories: Iterable[str], on_hint: Callable[[Hint], None]) -> None:
        self.directories: tuple[str, ...] = tuple(
            dict.fromkeys(os.path.abspath(d) for d in directories)
        )
        self._on_hint = on_hint
        self._observer: BaseObserver | None = None
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()
        self.events = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Start the observer and watch every directory; return problems by directory."""
        from watchdog.observers.inotify import InotifyObserver

        with self._lock:
            if self._observer is None:
                observer = InotifyObserver()
                observer.daemon = True
                observer.start()
                self._observer = observer
        return self.ensure(hint=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the observer, waiting at most ``timeout`` seconds for its thread."""
        with self._lock:
            observer, self._observer = self._observer, None
            self._watches.clear()
        if observer is not None:
            observer.stop()
            observer.join(timeout=timeout)

    # -- health -------------------------------------------------------------------------
    @property
    def problems(self) -> dict[str, str]:
        """Directories not watched right now, with the reason."""
        with self._lock:
            return dict(self._problems)

    def alive(self) -> bool:
        """True when the observer runs and every directory has a live watch."""
        with self._lock:
            observer = self._observer
            if observer is None or not observer.is_alive():
                return False
            live = {e.watch for e in observer.emitters if e.is_alive()}
            return all(
                d in self._watches and self._watches[d][0] in live for d in self.directories
            )

    def ensure(self, *, hint: bool = True) -> dict[str, str]:
        """(Re-)watch directories that are unwatched, dead or replaced; return problems.

        With ``hint=True`` a re-created watch also reports a hint (a change may have
        happened while it was not watched).
        """
        recreated: list[str] = []
        with self._lock:
            observer = self._observer
            if observer is None:
                return {d: "watcher not started" for d in self.directories}
            live = {e.watch for e in observer.emitters if e.is_alive()}
            for directory in self.directories:
                try:
                    st = os.stat(directory)
                except OSError as exc:
                    self._drop(observer, directory)
                    self._problems[directory] = (
                        f"{directory}: cannot watch ({exc.strerror or type(exc).__name__})"
                    )
                    continue
                identity = (st.st_dev, st.st_ino)
                current = self._watches.get(directory)
                if current is not None and current[0] in live and current[1] == identity:
                    continue
                if current is not None:
                    self._drop(observer, directory)
                try:
                    watch = observer.schedule(
                        _Handler(directory, self._hint),
                        directory,
                        recursive=False,
                        event_filter=_event_filter(),
                    )
                except OSError as exc:
                    self._problems[directory] = (
                        f"{directory}: cannot watch ({exc.strerror or type(exc).__name__})"
                    )
                    continue
                self._watches[directory] = (watch, identity)
                if current is not None or self._problems.pop(directory, None) is not None:
                    recreated.append(directory)
                logger.debug("watching %s", directory)
            problems = dict(self._problems)
        if hint:
            for directory in recreated:
                self._hint(Hint(directory, directory))
        return problems

    # -- internals ----------------------------------------------------------------------
    def _drop(self, observer: BaseObserver, directory: str) -> None:
        current = self._watches.pop(directory, None)
        if current is None:
            return
        try:
            observer.unschedule(current[0])
        except (KeyError, OSError):
            pass

    def _hint(self, hint: Hint) -> None:
        self.events += 1
        try:
            self._on_hint(hint)
        except Exception:  # a failing callback must not kill the watch
            logger.exception("hint callback failed for %s", hint.directory)


def _event_filter() -> list[Any]:
    """The event classes that can mean "content changed"; the kernel mask follows them.

    Excluded on purpose: opened, closed-without-write, attribute changes (touch, chmod)
    and directory-modified (a derived duplicate of the others).
    """
    from watchdog import events as ev

    return [
        ev.FileMovedEvent,
        ev.DirMovedEvent,
        ev.FileCreatedEvent,
        ev.DirCreatedEvent,
        ev.FileDeletedEvent,
        ev.DirDeletedEvent,
        ev.FileModifiedEvent,
        ev.FileClosedEvent,
    ]


class _Handler:
    """Forward every (already filtered) event of one directory as a :class:`Hint`."""

    def __init__(self, directory: str, hint: Callable[[Hint], None]) -> None:
        self.directory = directory
        self._hint = hint

    def dispatch(self, event: Any) -> None:
        path = getattr(event, "dest_path", "") or event.src_path
        self._hint(Hint(self.directory, os.fsdecode(path)))
