"""The loop's upkeep: the periodic re-check, the state file, warnings logged once, gauges.

Everything the :class:`~.loop.Engine` does besides detecting and applying changes: the
``--resync`` re-check (watches re-armed, layouts re-checked), saving the applied
fingerprint to the state file (and saying once, in ``/healthz`` details, when it
cannot), logging each distinct warning once (a bounded memory), and the pending gauges
per key. Also the sidecar's logger, which every part of the loop logs through.

:class:`Upkeep` is a mixin of :class:`~.loop.Engine`: it holds no state of its own and
works on the attributes ``Engine.__init__`` sets (in ``loop``). It is separate because
none of it decides when an action runs.
"""

from __future__ import annotations

import logging

from .keys import listable
from .state import State, StateError

__all__ = ["Upkeep", "logger"]

logger = logging.getLogger("agentos_secrets.sidecar")


def _log(level: int, message: str, **fields: object) -> None:
    logger.log(level, message, extra={"fields": fields})


#: Distinct warnings remembered so each is logged once; beyond it the memory restarts.
_MAX_REMEMBERED_WARNINGS = 256


class Upkeep:
    """Re-check, state file, warnings, gauges (mixin of ``loop.Engine``)."""

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
