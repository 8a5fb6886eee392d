"""What ``rotate`` tells people and machines while it runs.

Three forms of the same events:

* ``tty``: a live view on a terminal (stderr): one line per event, and the gate's
  progress (phase, pods converged of total, time waiting) redrawn in place;
* ``plain``: timestamped lines, one per event, progress at most every 10 s or on change
  (CI logs, pipes);
* ``json``: one JSON object per line on stdout (``--output json``), for automation; the
  schema is in docs/rotate.md.

Every text goes through :meth:`Reporter.redact` with the values this run knows, a
second line of defence: no event is ever built from a value in the first place.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from typing import Any, TextIO

__all__ = ["Reporter"]

SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reporter:
    def __init__(self, mode: str, *, stream: TextIO | None = None) -> None:
        if mode not in ("tty", "plain", "json"):
            raise ValueError(mode)
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._secrets: list[str] = []
        self._progress_shown = False
        self._last_progress: tuple[Any, ...] | None = None
        self._last_progress_at = 0.0
        self._closed_by_reader = False

    def add_secret(self, value: bytes) -> None:
        """A value that must never be printed (redacted if it ever were)."""
        text = value.decode("utf-8", "replace")
        if text and text not in self._secrets:
            self._secrets.append(text)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def _write(self, text: str) -> None:
        if self._closed_by_reader:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (``| head``): the rotation goes on, as a kill at this
            # point would leave it half-way; its exit status still tells the outcome.
            self._closed_by_reader = True
            self._silence()

    def _silence(self) -> None:
        """Point the stream's descriptor at /dev/null so that the interpreter's final
        flush does not print an error either (what the Python docs advise for SIGPIPE)."""
        import contextlib
        import os

        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def _end_progress(self) -> None:
        if self._progress_shown:
            self._write("\n")
            self._progress_shown = False

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """One event: ``message`` for people, ``fields`` for machines."""
        message = self.redact(message)
        if self.mode == "json":
            document = {"v": SCHEMA_VERSION, "ts": _now(), "event": kind, "message": message}
            document.update(self._clean(fields))
            self._write(json.dumps(document, sort_keys=False) + "\n")
            return
        self._end_progress()
        prefix = f"{_now()} " if self.mode == "plain" else ""
        self._write(f"{prefix}rotate: {message}\n")

    def progress(
        self, phase: str, converged: int, total: int, waited: float, lagging: list[str]
    ) -> None:
        """A gate's progress; printed when it changed (plain: also every 10 s)."""
        state = (phase, converged, total, tuple(lagging))
        now = time.monotonic()
        changed = state != self._last_progress
        self._last_progress = state
        if self.mode == "json":
            if changed:
                self.event("gate-progress", f"{phase}: {converged}/{total} pods converged",
                           phase=phase, converged=converged, total=total,
                           waited_s=round(waited, 1), lagging=lagging)
            return
        text = f"{phase}: {converged}/{total} pods converged, waiting {waited:.0f} s"
        if lagging:
            shown = ", ".join(lagging[:3]) + (" ..." if len(lagging) > 3 else "")
            text += f" (lagging: {shown})"
        text = self.redact(text)
        if self.mode == "tty":
            self._write(f"\r\x1b[K{text}")
            self._progress_shown = True
        elif changed or now - self._last_progress_at >= 10:
            self._last_progress_at = now
            self._write(f"{_now()} rotate: {text}\n")

    def close(self) -> None:
        if self.mode == "tty":
            self._end_progress()
