"""Applying a desired change: the storm breaker, the attempt, its outcome and its record.

An attempt always applies the *newest* content (what is mounted at that moment), so a
retry after a second rotation carries the second one, never the first. An attempt for
content not attempted before must pass the :class:`~.coalesce.StormBreaker`; retries of
the same content need not (they are already paced by the backoff). A failure leaves the
change desired and sets the next retry (jittered exponential backoff for retryable
errors, the slowest pace for configuration errors); a success is saved to the state file,
on the background :class:`~.recorder.Recorder` when one runs so the ~20 ms derivations do
not delay the reaction to a next rotation. ``--action none`` takes a change up at once.
``_next_deadline`` says when the loop must turn again for a pending attempt.

:class:`Applying` is a mixin of :class:`~.loop.Engine` and works on its attributes (set
in ``loop``); it is separate from the loop's turn, which decides *when* to attempt.
"""

from __future__ import annotations

import logging

from .actions.base import ActionError
from .upkeep import Upkeep, _log

__all__ = ["Applying"]


class Applying(Upkeep):
    """Breaker, attempt, outcome and record of an action (mixin of ``loop.Engine``)."""

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
            if self.action.kind != "rollout":
                # A rollout replaces this pod instead of reloading its app, which keeps
                # what it started with: per key, that stays "applied" (a rotate gate
                # must wait for the new pods, not count this one).
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
