"""``Loader.watch``: per-name change callbacks built on the shared hints of ``watch.py``.

How a change reaches the callback:

1. :class:`agentos_secrets.watch.DirectoryWatcher` keeps one non-recursive inotify watch
   per directory involved (the secret directories, and the parent directory of each
   ``NAME_FILE`` path: a watch on the file itself dies at the first rename). Its events
   are only *hints*; reads, opens, touches and chmods are filtered out in the kernel.
2. A hint wakes this module's worker thread, which waits until the directories have been
   quiet for ``debounce`` seconds (at most ``max_wait``): the kubelet's four steps of one
   rotation, or a writer's truncate-then-write, become one check.
3. The check resolves every watched name through the Loader itself (the same cached,
   safe read as ``get()``, so it also feeds the grace window) and compares the content
   with the last value it saw (constant-time). Only a real difference calls
   ``callback(name, old_fingerprint, new_fingerprint)``; a fingerprint is None when the
   secret is missing on that side. Values never reach the callback.
4. Every ``resync`` seconds without hints the worker also re-checks and re-creates any
   watch whose directory was replaced: a missed event delays a callback, never loses it.

Threading: callbacks run one at a time, in order, on the worker thread
``agentos-secrets-watch``; a slow callback delays the next check, nothing is dropped or
run concurrently. ``stop()`` (or leaving the ``with`` block) stops the watches and waits
for a running callback to return: once it returns no callback runs any more. Called from
inside a callback, ``stop()`` returns at once and no further callback runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from .errors import SecretError
from .watch import DirectoryWatcher, Hint

if TYPE_CHECKING:
    from .secret import Secret

__all__ = ["ChangeCallback", "SecretWatch", "Watched"]

logger = logging.getLogger("agentos_secrets")

#: ``callback(name, old_fingerprint, new_fingerprint)``; None means "missing".
ChangeCallback = Callable[[str, "str | None", "str | None"], object]


class Watched(Protocol):
    """What a watch needs of the Loader (described here so that this module never
    imports ``loader``, which imports it lazily: no cycle, not even for types)."""

    @property
    def secret_dirs(self) -> tuple[str, ...]: ...

    def get(self, name: str) -> Secret | None: ...

    def _path_of(self, name: str) -> str | None: ...


class SecretWatch:
    """A running ``Loader.watch``: call :meth:`stop` or use it as a context manager."""

    def __init__(
        self,
        loader: Watched,
        callback: ChangeCallback,
        names: Iterable[str],
        *,
        debounce: float = 0.1,
        max_wait: float = 2.0,
        resync: float = 60.0,
    ) -> None:
        if debounce < 0 or max_wait < debounce or resync <= 0:
            raise ValueError("need 0 <= debounce <= max_wait and resync > 0 (seconds)")
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        if not self.names:
            raise ValueError("nothing to watch: pass names=[...] or get() some secrets first")
        self._loader = loader
        self._callback = callback
        self.debounce = debounce
        self.max_wait = max_wait
        self.resync = resync
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last: dict[str, Secret | None] = {}
        self._watcher = DirectoryWatcher(self._directories(), self._on_hint)
        self._thread = threading.Thread(
            target=self._run, name="agentos-secrets-watch", daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SecretWatch:
        """Watch first, then take the baseline: a change after it is never missed."""
        problems = self._watcher.start()
        for directory, problem in problems.items():
            logger.warning("watch: %s (directory %s)", problem, directory)
        for name in self.names:
            self._last[name] = self._current(name)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; when it returns, no callback is running or will run."""
        self._stop.set()
        self._wake.set()
        self._watcher.stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> SecretWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def directories(self) -> tuple[str, ...]:
        """The directories watched (non-recursively)."""
        return self._watcher.directories

    def alive(self) -> bool:
        """True while the worker runs and every directory has a live watch."""
        return self._thread.is_alive() and self._watcher.alive()

    # -- internals ----------------------------------------------------------------------
    def _directories(self) -> list[str]:
        found: list[str] = []
        for name in self.names:
            path = self._loader._path_of(name)
            if path is not None:
                found.append(os.path.dirname(os.path.abspath(path)))
        # A name missing now may appear later in a secret directory.
        found.extend(d for d in self._loader.secret_dirs if os.path.isdir(d))
        return list(dict.fromkeys(found))

    def _on_hint(self, hint: Hint) -> None:
        # On watchdog's thread: only set a flag.
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            hinted = self._wake.wait(self.resync)
            if self._stop.is_set():
                return
            if hinted:
                self._settle()
                if self._stop.is_set():
                    return
            else:
                self._watcher.ensure()
            self._check()

    def _settle(self) -> None:
        """Wait until no hint came for ``debounce`` seconds, or ``max_wait`` passed."""
        deadline = time.monotonic() + self.max_wait
        while True:
            self._wake.clear()
            if self._stop.wait(self.debounce):
                return
            if not self._wake.is_set() or time.monotonic() >= deadline:
                return

    def _current(self, name: str) -> Secret | None:
        try:
            return self._loader.get(name)
        except SecretError as exc:
            # The error names the variable and path, never the value.
            logger.warning("watch: secret %s cannot be resolved: %s", name, exc)
            return self._last.get(name)

    def _check(self) -> None:
        for name in self.names:
            if self._stop.is_set():
                return
            old = self._last.get(name)
            new = self._current(name)
            if old is None and new is None:
                continue
            if old is not None and new is not None and old == new:
                continue
            self._last[name] = new
            old_fp = old.fingerprint() if old is not None else None
            new_fp = new.fingerprint() if new is not None else None
            try:
                self._callback(name, old_fp, new_fp)
            except Exception as exc:  # noqa: BLE001 - a failing callback must not stop the watch
                # Only the type: the callback's own message might quote anything.
                logger.error(
                    "watch: callback for secret %s raised %s", name, type(exc).__name__
                )
