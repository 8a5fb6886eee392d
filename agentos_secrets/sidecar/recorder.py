"""Recording applied changes off the loop's thread.

After a successful action the loop must derive the slow fingerprints (~20 ms of PBKDF2
each: the combined one when the action did not need it, and those of the keys that
changed) and write the state file. Doing that on the loop's thread would delay the
reaction to a rotation that follows at once; the :class:`Recorder` does it on one
background thread, in submission order, so the state file always ends with the newest
applied content.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Recorder"]

logger = logging.getLogger("agentos_secrets.sidecar")


class Recorder:
    """One background thread that derives fingerprints and saves state, in order.

    The loop is then free to react to the next rotation at once. A kill in the ~20 ms
    window before the save means one extra action after the restart, never a lost one.
    """

    def __init__(self, record: Callable[[bytes, str, dict[str, object]], None]) -> None:
        self._record = record
        self._queue: queue.SimpleQueue[tuple[bytes, str, dict[str, object]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, target: bytes, fields: dict[str, object], fingerprint: str = "") -> None:
        """Record ``target`` as applied; ``fingerprint`` when the action already has it."""
        with self._lock:
            self._pending += 1
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sidecar-recorder", daemon=True
                )
                self._thread.start()
        self._queue.put((target, fingerprint, fields))

    def flush(self, timeout: float) -> None:
        self._idle.wait(timeout)

    def close(self, timeout: float) -> None:
        """Flush, then end the thread (a later :meth:`submit` starts a new one)."""
        self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._record(*item)
            except Exception:  # keep recording later successes
                logger.error("recording an applied change failed", exc_info=True)
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()
