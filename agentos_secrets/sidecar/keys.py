"""Per-key fingerprints: what is mounted now, and what the app has taken up.

The loop's :class:`~.detect.Detector` decides *whether* something changed (one digest
over everything watched). This module says *what*, per key, for ``GET /status``:

* **mounted**: the fingerprint of the key's value as the Loader reads it by default
  (:func:`~agentos_secrets.files.read_secret_file` with the Loader's defaults: trimmed,
  strict UTF-8, 64 KiB cap, group/other-writable refused), or no fingerprint and a
  reason code (``file-not-found``, ``file-insecure``, ...) when the Loader could not
  read it either;
* **applied**: the mounted fingerprint at the last successful action (restored from the
  state file after a restart).

Fingerprints are :func:`~agentos_secrets.secret.fingerprint_bytes` (PBKDF2, ~15 ms
each), derived only when a key's SHA-256 content hash changes. The sidecar derives them
on a background thread (:meth:`request`; hashlib releases the GIL), so neither start-up
nor the reaction to the next rotation waits for them: with ``--debounce 0`` a loop that
derived them itself was ~10x slower from detection to reload under back-to-back
rotations. Between :meth:`refresh` and the derivation the values to derive are held in
memory; nothing else is kept but hashes.

Keys are the entries of each watched directory that are not directories and do not
start with a dot (the kubelet's ``..data`` and generations), or the one file a
``--watch`` path names. At most :data:`MAX_KEYS` keys are tracked over all watched
paths (sorted by name within each path, paths in ``--watch`` order); the rest are
counted as truncated and never derived (256 derivations already cost ~4 s).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import SecretError
from ..files import DEFAULT_MAX_BYTES, iter_keys, read_secret_file
from ..secret import fingerprint_bytes
from ..watch import watch_directory

__all__ = ["MAX_KEYS", "MAX_NAME_CHARS", "KeyStatus", "KeyTracker", "listable"]

#: Keys tracked and listed, over all watched paths.
MAX_KEYS = 256
#: A Kubernetes Secret key is at most 253 characters.
MAX_NAME_CHARS = 253

_Id = tuple[int, str]  # (index of the --watch path, key name)


def listable(name: str) -> bool:
    """Whether a key name is shown (``/status``, metric labels): at most 253 characters
    and valid UTF-8 (a file name that is not decodes to lone surrogates, which neither
    a JSON consumer nor the Prometheus exposition can carry). Kubernetes keys always are.
    """
    if len(name) > MAX_NAME_CHARS:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """One key as ``/status`` shows it. Fingerprints only, never a value or a hash."""

    watch: int
    name: str
    mounted: str | None
    applied: str | None
    reason: str | None  # why ``mounted`` is None: an error code, never a path or value


@dataclass(frozen=True, slots=True)
class _Mounted:
    # SHA-256 of the value as the Loader reads it: memory only, never in a repr (an
    # unsalted hash of a short token can be brute-forced).
    sha: bytes | None = field(repr=False)
    reason: str | None


class KeyTracker:
    """Mounted and applied fingerprints of every key under the watched paths.

    :meth:`refresh`, :meth:`derive` and :meth:`mark_applied` run on the loop's thread
    (``derive`` also on the recorder's); :meth:`snapshot` from any thread.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        fingerprint: Callable[[bytes], str] = fingerprint_bytes,
        max_keys: int = MAX_KEYS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_derived: Callable[[], None] | None = None,
    ) -> None:
        self.paths = tuple(paths)
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._fingerprint = fingerprint
        self._on_derived = on_derived
        self._wake = threading.Condition()
        self._busy = 0  # derivations in flight on any thread
        self._thread: threading.Thread | None = None
        self._closing = False
        self._by_directory: dict[str, list[int]] = {}
        for index, path in enumerate(self.paths):
            self._by_directory.setdefault(watch_directory(path), []).append(index)
        self._lock = threading.Lock()
        self._names: dict[int, list[str]] = {}
        self._skipped: dict[int, int] = {}
        self._mounted: dict[_Id, _Mounted] = {}
        self._applied: dict[_Id, tuple[bytes | None, str | None]] = {}
        self._fp_of: dict[bytes, str] = {}
        self._to_derive: dict[bytes, bytes] = {}
        self._published: tuple[tuple[KeyStatus, ...], bool] = ((), False)
        #: Derivations done since start (for tests and the benchmark).
        self.derivations = 0

    # -- mounted --------------------------------------------------------------------------
    def refresh(self, directories: Iterable[str] | None = None) -> None:
        """Re-read the keys of the watched paths in ``directories`` (all when None).

        Only hashes here: a changed value waits for :meth:`derive`.
        """
        if directories is None:
            indexes: Iterable[int] = range(len(self.paths))
        else:
            indexes = sorted({i for d in directories for i in self._by_directory.get(d, ())})
        for index in indexes:
            self._refresh_one(index)

    def _refresh_one(self, index: int) -> None:
        path = self.paths[index]
        with self._lock:
            others = sum(len(v) for i, v in self._names.items() if i != index)
        room = max(0, self.max_keys - others)
        kept: list[str] = []
        more = False
        if os.path.isdir(path):
            directory = path
            for name in iter_keys(path):  # stat only up to the cap, not a huge directory
                if os.path.isdir(os.path.join(path, name)):
                    continue
                if len(kept) == room:
                    more = True
                    break
                kept.append(name)
        else:
            directory = os.path.dirname(path)
            if os.path.isdir(directory):
                kept, more = [os.path.basename(path)][:room], room == 0
        # Values live until the lock below decides which ones still need a derivation
        # (deciding earlier would race with the pruning of known fingerprints).
        readings = {name: self._read(os.path.join(directory, name)) for name in kept}
        with self._lock:
            self._names[index] = kept
            self._skipped[index] = 1 if more else 0
            for key in [k for k in self._mounted if k[0] == index and k[1] not in readings]:
                del self._mounted[key]
            for name, (mounted, value) in readings.items():
                self._mounted[(index, name)] = mounted
                if value is not None and mounted.sha not in self._fp_of:
                    self._to_derive[mounted.sha] = value  # type: ignore[index]
            self._publish()

    def _read(self, path: str) -> tuple[_Mounted, bytes | None]:
        try:
            value, _ = read_secret_file(path, max_bytes=self.max_bytes)
        except SecretError as exc:
            return _Mounted(None, exc.code), None
        return _Mounted(hashlib.sha256(value).digest(), None), value

    def derive(self) -> int:
        """Derive the fingerprints of changed values now, on this thread; how many."""
        with self._wake:
            with self._lock:
                work, self._to_derive = self._to_derive, {}
            if not work:
                return 0
            self._busy += 1
        try:
            derived = {sha: self._fingerprint(value) for sha, value in work.items()}
            del work
            self._store(derived)
        finally:
            with self._wake:
                self._busy -= 1
                self._wake.notify_all()
        if self._on_derived is not None:
            self._on_derived()
        return len(derived)

    # -- the background thread --------------------------------------------------------
    def request(self) -> None:
        """Derive what changed on the background thread (started on first use)."""
        with self._lock:
            if not self._to_derive:
                return
        with self._wake:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._run, name="sidecar-keys", daemon=True
                )
                self._thread.start()
            self._wake.notify_all()

    def idle(self) -> bool:
        """Nothing is left to derive and no derivation is in flight."""
        with self._wake, self._lock:
            return not self._to_derive and self._busy == 0

    def wait(self, timeout: float) -> bool:
        """Wait until :meth:`idle` (derivations on any thread); False on timeout."""
        def idle() -> bool:
            with self._lock:
                return not self._to_derive and self._busy == 0

        with self._wake:
            return self._wake.wait_for(idle, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish the derivations in flight and end the background thread."""
        with self._wake:
            self._closing = True
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closing and not self._has_work():
                    self._wake.wait()
                if self._closing:
                    return
            try:
                self.derive()
            except Exception:  # keep deriving later changes
                import logging

                logging.getLogger("agentos_secrets.sidecar").error(
                    "deriving key fingerprints failed", exc_info=True
                )

    def _has_work(self) -> bool:
        with self._lock:
            return bool(self._to_derive)

    def _store(self, derived: dict[bytes, str]) -> None:
        with self._lock:
            self._fp_of.update(derived)
            self.derivations += len(derived)
            self._applied = {
                key: (sha, fp if fp is not None or sha is None else self._fp_of.get(sha))
                for key, (sha, fp) in self._applied.items()
            }
            live = {m.sha for m in self._mounted.values()}
            live.update(sha for sha, _ in self._applied.values())
            self._fp_of = {sha: fp for sha, fp in self._fp_of.items() if sha in live}
            self._publish()
        return len(derived)

    # -- applied --------------------------------------------------------------------------
    def mark_applied(self) -> None:
        """The app has taken up what is mounted now (after a successful action)."""
        with self._lock:
            self._applied = {
                key: (m.sha, self._fp_of.get(m.sha) if m.sha is not None else None)
                for key, m in self._mounted.items()
            }
            self._publish()

    def restore(self, saved: Mapping[str, Mapping[str, str]]) -> None:
        """Applied fingerprints from the state file (keys of paths still watched)."""
        with self._lock:
            self._applied = {
                (index, name): (None, fp)
                for index, path in enumerate(self.paths)
                for name, fp in saved.get(path, {}).items()
            }
            self._publish()

    def applied_for_state(self) -> dict[str, dict[str, str]]:
        """``{watched path: {key: fingerprint}}`` of what was applied, for the state file."""
        with self._lock:
            out: dict[str, dict[str, str]] = {}
            for (index, name), (_sha, fp) in self._applied.items():
                if fp is not None:
                    out.setdefault(self.paths[index], {})[name] = fp
            return out

    # -- reading --------------------------------------------------------------------------
    def _publish(self) -> None:
        listed: list[KeyStatus] = []
        for index in sorted(self._names):
            for name in self._names[index]:
                mounted = self._mounted.get((index, name))
                if mounted is None:
                    continue
                fp = self._fp_of.get(mounted.sha) if mounted.sha is not None else None
                applied = self._applied.get((index, name))
                reason = mounted.reason if mounted.sha is None else None
                if mounted.sha is not None and fp is None:
                    reason = "deriving"
                listed.append(
                    KeyStatus(index, name, fp, applied[1] if applied else None, reason)
                )
        self._published = (tuple(listed), any(self._skipped.values()))

    def snapshot(self) -> tuple[tuple[KeyStatus, ...], bool]:
        """The keys (in ``--watch`` order, then by name) and whether some were left out.

        A value read but not derived yet shows ``mounted`` None with reason ``deriving``
        (the loop derives right after reading, or right after an action it runs at once).
        """
        return self._published
