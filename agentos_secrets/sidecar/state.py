"""``--state-file``: what was last applied, so a restart neither repeats nor misses.

At start-up the loop compares the fingerprint of what is mounted now with the one saved:

* no state: record a baseline and do nothing (the app just started and read the files
  itself; acting now is the start-up race of kube-prometheus issue 507);
* the same fingerprint: nothing (ten restarts of the sidecar cause zero actions);
* a different one: a rotation happened while the sidecar was down: exactly one action.

Besides the combined fingerprint, the file keeps the applied fingerprint of each key, so
a restarted sidecar still reports in ``GET /status`` what the app has taken up.

Only ``fp1:`` fingerprints are stored (slow and salted, safe to keep on an emptyDir),
never content or a raw hash. Writes are atomic (temporary file in the same directory,
mode 0600, fsync, rename, fsync of the directory), so a SIGKILL mid-write leaves the old
state or the new, never half.

The file is read with :func:`agentos_secrets.files.read_bounded` (a FIFO or a device
fails at once, size capped) and parsed strictly: duplicate fields, unknown fields and
wrong types are refused, nesting and numbers are bounded. Two verdicts exist for a file
that cannot be used, and they differ in what the sidecar may do next:

* :class:`StateUnusable`: the file is the sidecar's own (it carries the ``kind`` marker)
  but its content is not valid. A new baseline is recorded and the file is overwritten.
* :class:`StateNotOurs`: something else is at the path (not a regular file, a symlink,
  not JSON, another program's JSON, too large, unreadable). It is **never** overwritten:
  the sidecar runs without persistence and says so (log, metric, ``/healthz`` details).

The format of the previous release (``{"version": 1, "fingerprint", "applied_at"}``,
no ``kind``) is recognised exactly and migrated: its combined fingerprint is trusted as
before, and per-key fingerprints are inferred only when that fingerprint still matches
what is mounted (then every key was applied). The next save writes version 2.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SecretFileError
from ..files import read_bounded, shown_path

__all__ = [
    "KIND",
    "MAX_STATE_BYTES",
    "MAX_STATE_KEYS",
    "VERSION",
    "State",
    "StateError",
    "StateFile",
    "StateNotOurs",
    "StateUnusable",
    "parse_state",
]

#: The marker that makes a file the sidecar's own.
KIND = "agentos-secrets-sidecar-state"
VERSION = 2
_LEGACY_VERSION = 1
#: 1 MiB holds 1,024 keys with the longest names Kubernetes allows, many times over.
MAX_STATE_BYTES = 1024 * 1024
MAX_STATE_KEYS = 1024
_MAX_WATCH_PATH = 4096
_MAX_KEY_NAME = 1024

_FINGERPRINT_RE = re.compile(r"fp1:[0-9a-f]{16}\Z")


class StateError(Exception):
    """The state file cannot be read or written; the message names the path (or hides a
    path that is not absolute) and never holds the file's content."""


class StateUnusable(StateError):
    """The file is the sidecar's own but invalid: a new baseline; it may be overwritten."""


class StateNotOurs(StateError):
    """Something else is at the path: it is never overwritten (no persistence)."""


@dataclass(frozen=True, slots=True)
class State:
    """What was last applied.

    ``keys`` maps a watched path (absolute, as given by ``--watch``) to its keys' applied
    fingerprints. ``legacy`` marks a state migrated from the version 1 format, which has
    no per-key fingerprints.
    """

    fingerprint: str
    applied_at: float
    keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    legacy: bool = False


# -- parsing ---------------------------------------------------------------------------------


class _Refused(Exception):
    """Internal: ``ours`` says whether the marker was found, ``reason`` why it failed."""

    def __init__(self, reason: str, *, ours: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ours = ours


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("duplicate field")  # no name: it may be anything
        result[name] = value
    return result


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _fingerprint(value: object) -> bool:
    return isinstance(value, str) and _FINGERPRINT_RE.match(value) is not None


def parse_state(raw: bytes) -> State:
    """Parse a state document; :class:`StateUnusable` or :class:`StateNotOurs` (messages
    without the path; :class:`StateFile` adds it). Never anything else: bounded in size,
    nesting (the C decoder's recursion limit, caught) and number length."""
    try:
        return _parse(raw)
    except _Refused as refused:
        error: StateError = (
            StateUnusable(refused.reason) if refused.ours else StateNotOurs(refused.reason)
        )
    raise error  # outside the except block: nothing of the content travels along


def _parse(raw: bytes) -> State:
    if len(raw) > MAX_STATE_BYTES:
        raise _Refused(f"larger than {MAX_STATE_BYTES} bytes", ours=False)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data = _Refused
    if data is _Refused:
        raise _Refused("not a JSON document", ours=False)
    if not isinstance(data, dict):
        raise _Refused("not a JSON object", ours=False)
    if "kind" not in data:
        return _parse_legacy(data)
    if data["kind"] != KIND:
        raise _Refused("a JSON object of another kind", ours=False)
    if set(data) != {"kind", "version", "fingerprint", "applied_at", "keys"}:
        raise _Refused("unexpected or missing fields", ours=True)
    version = data["version"]
    if isinstance(version, bool) or version != VERSION:
        raise _Refused(f"unsupported version (this sidecar reads {VERSION})", ours=True)
    if not _fingerprint(data["fingerprint"]):
        raise _Refused("the fingerprint is malformed", ours=True)
    applied_at = _number(data["applied_at"])
    if applied_at is None:
        raise _Refused("applied_at is not a finite number >= 0", ours=True)
    keys = _parse_keys(data["keys"])
    return State(data["fingerprint"], applied_at, keys)


def _parse_keys(value: object) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise _Refused("keys is not an object", ours=True)
    keys: dict[str, dict[str, str]] = {}
    count = 0
    for watch, entries in value.items():
        if not watch.startswith("/") or len(watch) > _MAX_WATCH_PATH:
            raise _Refused("a watched path in keys is not absolute or too long", ours=True)
        if not isinstance(entries, dict):
            raise _Refused("a watched path's keys are not an object", ours=True)
        count += len(entries)
        if count > MAX_STATE_KEYS:
            raise _Refused(f"more than {MAX_STATE_KEYS} keys", ours=True)
        for name, fingerprint in entries.items():
            if not name or len(name) > _MAX_KEY_NAME or not _fingerprint(fingerprint):
                raise _Refused("a key's name or fingerprint is malformed", ours=True)
        keys[watch] = dict(entries)
    return keys


def _parse_legacy(data: dict[str, Any]) -> State:
    """The previous release's format, recognised exactly (it always wrote all three)."""
    if set(data) != {"version", "fingerprint", "applied_at"}:
        raise _Refused("a JSON object that is not a sidecar state", ours=False)
    version = data["version"]
    applied_at = _number(data["applied_at"])
    if (isinstance(version, bool) or version != _LEGACY_VERSION
            or not _fingerprint(data["fingerprint"]) or applied_at is None):
        raise _Refused("a JSON object that is not a sidecar state", ours=False)
    return State(data["fingerprint"], applied_at, {}, legacy=True)


def _render(state: State) -> bytes:
    if not _fingerprint(state.fingerprint):
        raise ValueError("only fp1: fingerprints are stored")
    count = 0
    for watch, entries in state.keys.items():
        count += len(entries)
        if not watch.startswith("/") or any(not _fingerprint(fp) for fp in entries.values()):
            raise ValueError("only fp1: fingerprints of absolute watched paths are stored")
    if count > MAX_STATE_KEYS:
        raise ValueError(f"at most {MAX_STATE_KEYS} keys are stored")
    return json.dumps({
        "kind": KIND,
        "version": VERSION,
        "fingerprint": state.fingerprint,
        "applied_at": state.applied_at,
        "keys": {w: dict(sorted(e.items())) for w, e in sorted(state.keys.items())},
    }, sort_keys=True).encode()


# -- the file ----------------------------------------------------------------------------------


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class StateFile:
    """Load and atomically save the state at ``path``; never overwrite another's file.

    ``path`` is shown in messages only when it was given absolute: a relative value may
    be a secret typed into the wrong place.
    """

    def __init__(self, path: str) -> None:
        self.given = path
        self.shown = shown_path(path)
        self.path = os.path.abspath(path)
        #: Why persistence is off (the path holds a file that is not ours), or None.
        self.not_ours: str | None = None

    def _error(self, cls: type[StateError], reason: str) -> StateError:
        return cls(f"state file {self.shown}: {reason}")

    def load(self) -> State | None:
        """The saved state; None when there is none. :class:`StateUnusable` when it is
        ours but invalid, :class:`StateNotOurs` when the path holds anything else (from
        then on :meth:`save` refuses). Never blocks on a FIFO, never reads unbounded."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._not_ours(f"cannot be examined ({_os_reason(exc)})") from None
        if stat.S_ISLNK(st.st_mode):
            raise self._not_ours("is a symlink; the sidecar writes only its own regular file")
        if not stat.S_ISREG(st.st_mode):
            raise self._not_ours("is not a regular file")
        try:
            raw = read_bounded(self.path, what="--state-file", max_bytes=MAX_STATE_BYTES)
        except SecretFileError as exc:
            reason = f"cannot be read ({exc.code})"
        else:
            reason = ""
        if reason:
            raise self._not_ours(reason)
        verdict: type[StateError]
        try:
            state = parse_state(raw)
        except StateError as exc:
            verdict, reason = type(exc), str(exc)
        else:
            return state
        if verdict is StateUnusable:
            raise self._error(
                StateUnusable, f"{reason}; the file is the sidecar's own: a new baseline"
                " replaces it"
            )
        raise self._not_ours(reason)

    def _not_ours(self, reason: str) -> StateError:
        self.not_ours = reason
        return self._error(
            StateNotOurs, f"{reason}; not the sidecar's own, so never overwritten"
            " (running without persistence)"
        )

    def _still_ours(self) -> None:
        """Before replacing the path: it is absent or ours by content.

        Read again on every save (saves are rare: one per applied change), since an
        identity remembered from our last write could be an inode number reused by
        someone else's file.
        """
        if self.not_ours is not None:
            raise self._error(StateNotOurs, f"{self.not_ours}; not overwritten")
        try:
            self.load()
        except StateUnusable:
            return  # ours, invalid: overwriting it is the fix

    def save(self, state: State) -> None:
        """Replace the state atomically. :class:`StateNotOurs` when the path holds a file
        that is not ours; :class:`StateError` when the directory is not writable."""
        body = _render(state)
        self._still_ours()
        directory = os.path.dirname(self.path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)  # mode 0600
        except OSError as exc:
            raise self._error(
                StateError, f"cannot write in its directory ({_os_reason(exc)})"
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
            reason = _os_reason(exc)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise self._not_ours("is a directory") from None
            raise self._error(StateError, f"cannot write ({reason})") from None
        self._sync_directory(directory)

    @staticmethod
    def _sync_directory(directory: str) -> None:
        # The rename is durable only once the directory is; best effort (not every
        # file system supports fsync on a directory).
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
