"""``--state-file``: the last applied fingerprint, so a restart neither repeats nor misses.

At start-up the loop compares the fingerprint of what is mounted now with the one saved:

* no state: record a baseline and do nothing (the app just started and read the files
  itself; acting now is the start-up race of kube-prometheus issue 507);
* the same fingerprint: nothing (ten restarts of the sidecar cause zero actions);
* a different one: a rotation happened while the sidecar was down: exactly one action.

Only the ``fp1:`` fingerprint is stored (slow and salted, safe to keep on an emptyDir),
never content or a raw hash. Writes are atomic (temporary file in the same directory,
fsync, rename), so a SIGKILL mid-write leaves the old state or the new, never half.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass

__all__ = ["State", "StateError", "StateFile"]

_FINGERPRINT_RE = re.compile(r"fp1:[0-9a-f]{16}\Z")
_VERSION = 1


class StateError(Exception):
    """The state file cannot be read or written; the message names the path."""


@dataclass(frozen=True, slots=True)
class State:
    fingerprint: str
    applied_at: float


class StateFile:
    """Load and atomically save the last applied fingerprint at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def load(self) -> State | None:
        """The saved state; None when there is none; ``StateError`` when it is unusable."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = handle.read(4096)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(
                f"state file {self.path}: cannot read ({exc.strerror or type(exc).__name__})"
            ) from None
        try:
            data = json.loads(raw)
            fingerprint = data["fingerprint"]
            applied_at = float(data.get("applied_at", 0.0))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"state file {self.path}: not a valid state document") from None
        if not isinstance(fingerprint, str) or not _FINGERPRINT_RE.match(fingerprint):
            raise StateError(f"state file {self.path}: the fingerprint is malformed")
        return State(fingerprint, applied_at)

    def save(self, state: State) -> None:
        """Replace the state atomically; ``StateError`` when the directory is not writable."""
        if not _FINGERPRINT_RE.match(state.fingerprint):
            raise ValueError("only fp1: fingerprints are stored")
        directory = os.path.dirname(self.path)
        body = json.dumps(
            {"version": _VERSION, "fingerprint": state.fingerprint, "applied_at": state.applied_at}
        ).encode()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
        except OSError as exc:
            raise StateError(
                f"state file {self.path}: cannot write in {directory}"
                f" ({exc.strerror or type(exc).__name__})"
            ) from None
        try:
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StateError(
                f"state file {self.path}: cannot write ({exc.strerror or type(exc).__name__})"
            ) from None
