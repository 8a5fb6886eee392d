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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..secret import fingerprint_bytes
from ..watch import Hint
from .actions.base import Action, ActionError
from .coalesce import Coalescer, StormBreaker
from .keys import KeyTracker, listable
from .recorder import Recorder
from .retry import Backoff
from .state import State, StateError, StateFile, StateNotOurs

if TYPE_CHECKING:  # pragma: no cover
    from ..watch import DirectoryWatcher
    from .detect import Detector
    from .metrics import Metrics

__all__ = ["Engine"]

logger = logging.getLogger("agentos_secrets.sidecar")

_READY_CACHE = 1.0


def _log(level: int, message: str, **fields: object) -> None:
    logger.log(level, message, extra={"fields": fields})


#: Distinct warnings remembered so each is logged once; beyond it the memory restarts.
_MAX_REMEMBERED_WARNINGS = 256


class Engine:
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

    def _maybe_attempt(self, now: float) -> None:
        if self.retry_at is not None and now < self.retry_at:
            return
        target = self.seen
        if target == self.applied:
            self._settled()
            return
        if target != self.last_attempted:
            allowed = self.breaker.next_allowed(now)
            if allowed > now:
                if self.hold_until is None:
                    _log(logging.WARNING, "storm breaker holds the change; the newest content"
                         " will be applied when allowed", in_s=round(allowed - now, 3),
                         min_interval_s=self.breaker.min_interval,
                         max_per_hour=self.breaker.max_per_hour)
                self.hold_until = allowed
                return
            if self.hold_until is not None:
                _log(logging.INFO, "storm breaker releases the held change")
            self.hold_until = None
            self.breaker.record(now)
        self._attempt(target)

    def _after_derive(self) -> None:
        """Per-key fingerprints were derived (any thread): save the start-up's state."""
        if not self._save_due:
            return
        with self._record_lock:
            if not self._save_due or not self.keys.idle():
                return
            self._save_due = False
            if self.applied is not None and self.applied_fp is not None:
                self._save(self.applied_fp)

    def _take_up(self) -> None:
        """``--action none``: the app reads through the Loader, so mounted is applied."""
        self.applied = self.seen
        self._save_due = False  # saved below
        self.keys.mark_applied()
        self.keys.derive()
        self.keys.wait(5.0)  # a batch in flight on the background thread
        fingerprint = self._fingerprint(self.seen)
        with self._record_lock:
            self.applied_fp = fingerprint
            self._save(fingerprint)
        _log(logging.INFO, "content change taken up by the Loader (action none)",
             fingerprint=fingerprint)

    def _attempt(self, target: bytes) -> None:
        uses = getattr(self.action, "uses_fingerprint", True)
        fingerprint = self._fingerprint(target) if uses else ""
        self._streak += 1
        start = self.clock()
        self.action_started = start
        error: ActionError | None = None
        try:
            self.action.apply(fingerprint)
        except ActionError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - an action bug must not kill the loop
            error = ActionError(f"unexpected {type(exc).__name__}", retryable=True)
        end = self.clock()
        self.action_started = None
        self.last_attempted = target
        duration = end - start
        if error is None:
            latency = end - self.detected_at if self.detected_at is not None else None
            self.metrics.action_result("success", duration)
            if latency is not None:
                self.metrics.latency.observe(latency)
            self.metrics.last_success.set(self.wall())
            self.applied = target
            self.keys.mark_applied()
            self._save_due = False  # recorded below, with the newer content
            self.backoff.reset()
            self.last_error = None
            self._last_action("ok")
            self._settled()
            fields: dict[str, object] = {
                "action": self.action.kind,
                "previous": self.applied_fp,
                "duration_ms": round(duration * 1000, 2),
                "detection_to_action_ms": None if latency is None else round(latency * 1000, 2),
            }
            if self._recorder is None:
                self._record(target, fingerprint, fields)
            else:
                # The ~20 ms derivations would delay the reaction to a next rotation.
                self._recorder.submit(target, fields, fingerprint)
            return
        if error.retryable:
            delay = self.backoff.next_delay()
            self.metrics.action_result("retryable_error", duration)
        else:
            delay = self.backoff.slowest()
            self.metrics.action_result("config_error", duration)
        self.retry_at = end + delay
        self.last_error = str(error)
        self._last_action("failed")
        _log(logging.WARNING if error.retryable else logging.ERROR,
             "action failed; will retry" if error.retryable
             else "action failed: configuration error; retrying at the slowest pace",
             action=self.action.kind, error=str(error), status=error.status,
             retry_in_s=round(delay, 3), failures=self.backoff.failures)
        self.metrics.set_warning("config_error", 0 if error.retryable else 1)

    def _last_action(self, result: str) -> None:
        self.last_result = result
        self.last_at = self.wall()
        self.last_attempts = self._streak
        if result == "ok":
            self._streak = 0

    def _record(self, target: bytes, fingerprint: str, fields: dict[str, object]) -> None:
        """Derive the fingerprint if needed, save it, log the success (any thread)."""
        fingerprint = fingerprint or self._fingerprint(target)
        self.keys.derive()  # the per-key fingerprints the state file keeps
        self.keys.wait(5.0)
        with self._record_lock:
            if self.applied == target:  # a newer success may have overtaken this one
                self.applied_fp = fingerprint
                self._save(fingerprint)
        _log(logging.INFO, "action succeeded", fingerprint=fingerprint, **fields)

    def _settled(self) -> None:
        self.desired = False
        self.retry_at = None
        self.hold_until = None
        self.detected_at = None
        self.metrics.set_warning("config_error", 0)

    def _next_deadline(self, now: float) -> float:
        deadlines = [self.next_resync]
        due = self.coalescer.due()
        if due is not None:
            deadlines.append(due)
        if self.desired and not self.coalescer.pending:
            deadlines.append(self.hold_until or self.retry_at or now)
        return min(deadlines)

    # -- re-check, state, warnings --------------------------------------------------------
    def _recheck(self, now: float) -> None:
        self.metrics.rechecks.inc()
        self.next_resync = now + self.resync
        if self.watcher is not None:
            for problem in self.watcher.ensure().values():
                self._warn_once("watch", "cannot watch", problem=problem)
        self._check_layouts()

    def _check_layouts(self) -> None:
        bad = [layout for layout in self.detector.layouts() if layout.warning]
        self.metrics.set_warning(
            "layout_cannot_rotate", sum(1 for layout in bad if not layout.rotates)
        )
        for layout in bad:
            self._warn_once(layout.warning or "", "watched path may not rotate",
                            path=layout.path, layout=layout.kind, detail=layout.warning)
        self._log_problems()

    def _log_problems(self) -> None:
        problems = self.detector.problems()
        self.metrics.set_warning("unreadable_key", len(problems))
        self.metrics.watched_keys.set(self.detector.key_count())
        for problem in problems:
            self._warn_once(problem, "key cannot be read", detail=problem)

    def _warn_once(self, key: str, message: str, **fields: object) -> None:
        if key not in self._logged_warnings:
            if len(self._logged_warnings) >= _MAX_REMEMBERED_WARNINGS:
                # Problem texts may name per-generation paths: forget rather than grow.
                self._logged_warnings.clear()
            self._logged_warnings.add(key)
            _log(logging.WARNING, message, **fields)

    def _save(self, fingerprint: str) -> None:
        if self.state_file is None or self.state_file.not_ours is not None:
            return  # no persistence: said once at start-up, kept in /healthz details
        try:
            self.state_file.save(
                State(fingerprint, self.wall(), self.keys.applied_for_state())
            )
        except StateError as exc:
            self.state_problem = str(exc)
            self.metrics.set_warning("state_file", 1)
            self._warn_once("state-save", "cannot save the state file; a restart may"
                            " repeat or miss an action", error=str(exc))
        else:
            self.state_problem = None
            self.metrics.set_warning("state_file", 0)

    @property
    def pending(self) -> bool:
        """A confirmed change is waiting (coalescing, held, or being retried)."""
        return self.desired or self.coalescer.pending

    def _update_gauges(self) -> None:
        pending = self.pending
        self.metrics.pending.set(1 if pending else 0)
        self.metrics.holding.set(1 if self.hold_until is not None else 0)
        keys, _truncated = self.keys.snapshot()
        labels: set[tuple[str, str]] = set()
        for key in keys:
            if not listable(key.name):
                continue
            label = (str(key.watch), key.name)
            labels.add(label)
            self.metrics.key_pending.labels(*label).set(
                1 if pending and key.mounted != key.applied else 0
            )
        for label in self._key_labels - labels:
            self.metrics.key_pending.remove(*label)
        self._key_labels = labels

    # -- health -------------------------------------------------------------------------
    def health(self, now: float) -> tuple[bool, dict[str, object]]:
        """Liveness: the loop turns and the watches live. Details never hold a value."""
        reasons: list[str] = []
        budget = 2 * self.resync + 5
        started = self.action_started
        if started is not None and now - started > self.action_budget + 5:
            reasons.append(f"action running for {now - started:.0f}s")
        elif started is None and now - self.last_tick > budget:
            reasons.append(f"loop has not turned for {now - self.last_tick:.0f}s")
        watches_up = self.watcher.alive() if self.watcher is not None else True
        self.metrics.watches_up.set(1 if watches_up else 0)
        self.metrics.set_warning("watch_down", 0 if watches_up else 1)
        if not watches_up and self.watcher is not None:
            problems = "; ".join(self.watcher.problems.values())
            reasons.append("watch down: " + (problems or "the inotify observer is not running"))
        return not reasons, {
            "reasons": reasons,
            "pending_change": self.desired or self.coalescer.pending,
            "storm_breaker_holding": self.hold_until is not None,
            "last_error": self.last_error,
            "applied_fingerprint": self.applied_fp,
            "state_file": None if self.state_file is None else {
                "persisting": self.state_file.not_ours is None,
                "problem": self.state_problem,
            },
        }

    def startup(self, now: float) -> tuple[bool, dict[str, object]]:
        """Started: baseline recorded and watches up; the target is *not* required.

        For a native sidecar's ``startupProbe``: the app container starts only after
        this passes, so requiring the app's process here would deadlock the pod.
        """
        reasons = self._startup_reasons()
        return not reasons, {"reasons": reasons}

    def _startup_reasons(self) -> list[str]:
        reasons: list[str] = []
        if not self.started:
            reasons.append("baseline not recorded yet")
        if self.watcher is not None and not self.watcher.alive():
            reasons.append("watches not up")
        return reasons

    def readiness(self, now: float) -> tuple[bool, dict[str, object]]:
        """Ready: baseline recorded, watches up, the action's target found."""
        reasons = self._startup_reasons()
        cached = self._ready_cache
        if cached is None or now - cached[0] > _READY_CACHE:
            try:
                why = self.action.ready()
            except Exception as exc:  # noqa: BLE001 - a broken check is "not ready"
                why = f"readiness check failed ({type(exc).__name__})"
            cached = self._ready_cache = (now, why)
        if cached[1]:
            reasons.append(cached[1])
        reasons.extend(
            f"--watch {path} does not exist (a typo, or not mounted)"
            for path in self.detector.missing()
        )
        ok = not reasons
        self.metrics.ready.set(1 if ok else 0)
        return ok, {"reasons": reasons}

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

