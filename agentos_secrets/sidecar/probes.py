"""The sidecar's probes: liveness (``/healthz``), start-up and readiness, with details.

Liveness fails when the loop stops turning (or an action runs past its budget) or a
watch is down; start-up needs only the baseline and the watches (a native sidecar's
``startupProbe`` must not wait for the app it starts before); readiness also needs the
action's target (checked at most once a second) and every ``--watch`` path. Details
never hold a value.

:class:`Probes` is a mixin of :class:`~.loop.Engine`: it reads the attributes the loop
keeps (set in ``loop``) and changes nothing but gauges; it is separate because it runs on
the HTTP server's threads, not the loop's.
"""

from __future__ import annotations

__all__ = ["Probes"]

_READY_CACHE = 1.0


class Probes:
    """``health``, ``startup`` and ``readiness`` (mixin of ``loop.Engine``)."""

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
