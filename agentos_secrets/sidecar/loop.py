"""The sidecar's loop: hints in, confirmed changes coalesced, one action out, never lost.

One thread runs :meth:`Engine.run`; watchdog's thread only calls :meth:`Engine.hint`
(adds a directory to a set and wakes the loop). Each :meth:`Engine.step`:

1. re-hashes the hinted directories (all of them on a ``--resync`` tick); a combined
   digest different from the last one seen is a *confirmed* change, which feeds the
   :class:`~.coalesce.Coalescer`. Touches, chmods, identical rewrites and reads change
   no digest, so they cause nothing;
2. when the coalescer fires and what is mounted differs from what was applied, a change
   is *desired*. Desired and applied are tracked separately: an action that fails
   leaves the change desired, and it is retried with jittered exponential backoff
   (retryable errors) or at the slowest pace (configuration errors), forever;
3. an attempt always applies the *newest* content (what is mounted at that moment), so
   a retry after a second rotation carries the second one, never the first. An attempt
   for content not attempted before must pass the :class:`~.coalesce.StormBreaker`;
   retries of the same content need not (they are already paced by the backoff);
4. after a success the fingerprint is saved to the state file.

Per key, a :class:`~.keys.KeyTracker` follows what is mounted and what was applied
(``GET /status``); its slow fingerprints are derived in the same turn, after an action
that turn runs. With ``--action none`` (a passive action: the app reads through the
Loader on every use) a confirmed change is applied the moment it is seen.

The slow fingerprint is derived once per confirmed change at most, and only *after*
the action when the action does not send it (``uses_fingerprint = False``), so
detection-to-reload latency does not pay ~12 ms of PBKDF2.

:meth:`step` takes ``now`` as an argument and every clock is injected (``clock`` also
times the action itself), so the tests drive coalescing, breaker and backoff with a
fake clock.

The loop is :class:`Engine` and its mixins, one module each: ``applying`` (breaker,
attempt, outcome, record), ``upkeep`` (re-check, state file, warnings, gauges) and
``probes`` (health, start-up, readiness). This module holds the state they share and the
turn of the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..secret import fingerprint_bytes
from ..watch import Hint
from .actions.base import Action
from .applying import Applying
from .coalesce import Coalescer, StormBreaker
from .keys import KeyTracker
from .probes import Probes
from .recorder import Recorder
from .retry import Backoff
from .state import StateError, StateFile, StateNotOurs
from .upkeep import _log

if TYPE_CHECKING:  # pragma: no cover
    from ..watch import DirectoryWatcher
    from .detect import Detector
    from .metrics import Metrics

__all__ = ["Engine"]


class Engine(Applying, Probes):
    """Detection, coalescing, storm breaker, retries and state: see the module docs."""

    def __init__(
        self,
        *,
        detector: Detector,
        action: Action,
        metrics: Metrics,
        coalescer: Coalescer,
        breaker: StormBreaker,
        backoff: Backoff,
        resync: float,
        state_file: StateFile | None = None,
        watcher: DirectoryWatcher | None = None,
        action_budget: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        fingerprint: Callable[[bytes], str] = fingerprint_bytes,
        record_in_background: bool = False,
    ) -> None:
        self.detector = detector
        self.action = action
        self.metrics = metrics
        self.coalescer = coalescer
        self.breaker = breaker
        self.backoff = backoff
        self.resync = resync
        self.state_file = state_file
        self.watcher = watcher
        self.action_budget = action_budget
        self.clock = clock
        self.wall = wall
        self._fingerprint = fingerprint
        self.keys = KeyTracker(detector.paths, fingerprint=fingerprint,
                               on_derived=self._after_derive)
        self._background_keys = record_in_background
        #: ``--action none``: what is mounted is what the app uses.
        self.passive = bool(getattr(action, "passive", False))

        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._stopping = False

        self.seen: bytes = b""  # the combined digest of what is mounted (memory only)
        self.applied: bytes | None = None  # the digest last applied (None: unknown)
        self.applied_fp: str | None = None
        self.desired = False  # a change waits to be applied
        self.retry_at: float | None = None
        self.hold_until: float | None = None
        self.last_attempted: bytes | None = None
        self.detected_at: float | None = None
        self.last_error: str | None = None
        self.started = False
        self.last_tick = clock()
        self.action_started: float | None = None
        self.next_resync = 0.0
        self._logged_warnings: set[str] = set()
        self._ready_cache: tuple[float, str | None] | None = None
        self._record_lock = threading.Lock()
        # The last action's outcome for /status: result, wall time, attempts, error.
        self.last_result: str | None = None
        self.last_at: float | None = None
        self.last_attempts = 0
        self._streak = 0  # attempts since the last success
        self.state_problem: str | None = None
        self._save_due = False  # the start-up's state, saved once keys are derived
        self._key_labels: set[tuple[str, str]] = set()
        self._recorder = Recorder(self._record) if record_in_background else None

    # -- called from other threads ------------------------------------------------------
    def hint(self, hint: Hint) -> None:
        """A file-system event in ``hint.directory`` (watchdog's thread): wake the loop."""
        self.metrics.watch_events.inc()
        with self._cond:
            self._dirty.add(hint.directory)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every success is recorded in the state file."""
        if self._recorder is not None:
            self._recorder.flush(timeout)
        self.keys.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop the background recorder's thread (before exiting)."""
        if self._recorder is not None:
            self._recorder.close(timeout)
        self.keys.close(timeout)

    # -- start-up -----------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Watch, hash, compare with the state file. Never acts here, never blocks long.

        Watches start *before* the first hash, so a rotation in between is not missed.
        """
        if self.watcher is not None:
            for problem in self.watcher.start().values():
                _log(logging.WARNING, "cannot watch yet", problem=problem)
        self.seen = self.detector.refresh()
        # Per-key fingerprints (~15 ms each) are derived by the first step, not here:
        # the app's container waits for this start-up (a native sidecar's startupProbe).
        self.keys.refresh()
        fingerprint = self._fingerprint(self.seen)
        saved = None
        if self.state_file is not None:
            try:
                saved = self.state_file.load()
            except StateNotOurs as exc:
                self.state_problem = str(exc)
                self.metrics.set_warning("state_file", 1)
                _log(logging.WARNING, "state file is not the sidecar's own: it is never"
                     " overwritten; running without persistence (a restart may repeat or"
                     " miss an action)", error=str(exc))
            except StateError as exc:
                self.state_problem = str(exc)
                self.metrics.set_warning("state_file", 1)
                _log(logging.WARNING, "state file unusable; recording a new baseline",
                     error=str(exc))
        if saved is None or self.passive:
            self.applied, self.applied_fp = self.seen, fingerprint
            self.keys.mark_applied()
            # The baseline is saved before start-up ends (a kill right after must not
            # lose it), and again with the per-key fingerprints once they are derived.
            self._save(fingerprint)
            self._save_due = True
            _log(logging.INFO, "baseline recorded; no action", fingerprint=fingerprint,
                 keys=self.detector.key_count(), action=self.action.kind)
        elif saved.fingerprint == fingerprint:
            self.applied, self.applied_fp = self.seen, fingerprint
            if self.action.kind == "rollout" and not saved.legacy:
                self.keys.restore(saved.keys)  # what this pod's app started with
            else:
                self.keys.mark_applied()
            self._save_due = True  # migrates a version 1 file, refreshes per-key state
            _log(logging.INFO, "content unchanged since the last applied change; no action",
                 fingerprint=fingerprint, migrated=saved.legacy)
        else:
            self.applied, self.applied_fp = None, saved.fingerprint
            self.keys.restore(saved.keys)
            self.desired = True
            self.detected_at = now
            self.metrics.changes.inc()
            _log(logging.INFO, "content changed while the sidecar was down; one action",
                 fingerprint=fingerprint, applied=saved.fingerprint)
        self._check_layouts()
        self.next_resync = now + self.resync
        self.started = True
        self._update_gauges()

    # -- one turn of the loop -----------------------------------------------------------
    def step(self, now: float) -> float:
        """Process hints, timers and a due action; return when to run again."""
        self.last_tick = now
        with self._cond:
            dirty, self._dirty = self._dirty, set()
        full = now >= self.next_resync
        if full:
            self._recheck(now)
        changed = False
        if dirty or full:
            combined = self.detector.refresh(None if full else dirty)
            self.keys.refresh(None if full else dirty)
            if combined != self.seen:
                changed = True
                self.seen = combined
                self.metrics.changes.inc()
                if self.passive:
                    self._take_up()
                else:
                    self.coalescer.notice(now)
                    if self.detected_at is None:
                        self.detected_at = now
        if self.coalescer.take(now):
            if self.seen != self.applied:
                self.desired = True
            elif self.desired:
                _log(logging.INFO, "content is back to what was applied; nothing to do",
                     fingerprint=self.applied_fp)
                self._settled()
            else:
                self.detected_at = None
        if self.desired and not self.coalescer.pending:
            self._maybe_attempt(now)  # before the slow per-key derivations
        if self._background_keys:
            self.keys.request()  # the next rotation must not wait for PBKDF2
        else:
            self.keys.derive()
        if self._save_due and self.keys.idle():
            self._after_derive()  # nothing to derive (no readable key)
        if changed:  # logged after a --debounce 0 action, not in its way
            _log(logging.INFO, "content change detected",
                 where=sorted(dirty) if not full else "re-check",
                 debounce_s=self.coalescer.debounce)
            self._log_problems()
        self._update_gauges()
        return self._next_deadline(now)

    # -- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        """Start, then turn until :meth:`stop`; sleeps until a hint or the next deadline."""
        if not self.started:
            self.start(self.clock())
        while True:
            deadline = self.step(self.clock())
            with self._cond:
                if self._stopping:
                    return
                if not self._dirty:
                    self._cond.wait(max(0.0, deadline - self.clock()))
                if self._stopping:
                    return
