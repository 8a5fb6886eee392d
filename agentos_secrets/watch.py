"""Change detection shared by the sidecar and ``Loader.watch``: hints, digests, layouts.

Three primitives, each with one job (the last two in their own modules, re-exported
here):

* :class:`DirectoryWatcher`: one *non-recursive* watchdog (inotify) watch per directory.
  Its events are only **hints** handed to a callback: the kubelet's atomic writer shows
  up as a move of ``..data_tmp`` onto ``..data`` (never a "created ``..data``"), and an
  in-place write as a modify or close-after-write. Opens, reads and close-without-write
  are left out of the kernel mask (watchdog ``event_filter``), so an app reading its
  secrets, or the kubelet's periodic re-check, wakes nobody; attribute changes (touch,
  chmod) are dropped by the emitter before any callback. A file
  path is watched through its directory: a watch on a key symlink or on ``..data`` dies
  after the first swap.
* :func:`digest` / :func:`combine` (module ``digests``): the truth. A bounded SHA-256 over
  the sorted (key, content) pairs of every entry not starting with a dot. A touch, a
  chmod, an identical rewrite or a read leave the digest unchanged, so they cause
  nothing. The digest is kept in memory only and never printed.
* :func:`layout_of` (module ``layouts``): whether a watched path can rotate at all. A
  plain file that is a mount point, or a file outside any kubelet volume, is what a
  ``subPath`` mount looks like: the kubelet never updates it (kubernetes issue 50345).

watchdog is imported only when a watcher starts, so ``import agentos_secrets`` stays cheap.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .digests import MAX_ENTRIES, MAX_KEY_BYTES, MAX_TOTAL_BYTES, Digest, combine, digest
from .layouts import Layout, layout_of, parse_mountinfo

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


# -- targets ------------------------------------------------------------------------------


def watch_directory(path: str) -> str:
    """The directory to watch for ``path``: itself when a directory, else its parent."""
    path = os.path.abspath(path)
    return path if os.path.isdir(path) else os.path.dirname(path)


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
