"""The bounded content digest of a watched path: the truth behind every change.

A SHA-256 over the sorted (key, content) pairs of every entry not starting with a dot,
key symlinks followed, each file read with
:func:`agentos_secrets.files.read_secret_file` (no FIFO hangs, size capped). A touch, a
chmod, an identical rewrite or a read leave the digest unchanged, so they cause nothing.
Every walk is bounded: at most :data:`MAX_ENTRIES` entries, :data:`MAX_TOTAL_BYTES`
bytes, :data:`MAX_KEY_BYTES` per key and a nesting depth of 8, each directory hashed
once (links back to a watched directory cannot fan it out); a walk that hits a bound says
so in its problems instead of growing. The digest is kept in memory only and never
printed: the slow, safe :func:`agentos_secrets.secret.fingerprint_bytes` is what may be
shown or stored. :func:`combine` joins the digests of several watched paths.

Kept apart from the directory watcher (``watch``), whose events are only hints: this
module decides whether anything changed, and imports nothing of watchdog.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SecretFileError, SecretFileTooLargeError
from .files import read_secret_file

__all__ = ["MAX_ENTRIES", "MAX_KEY_BYTES", "MAX_TOTAL_BYTES", "Digest", "combine", "digest"]

#: A Kubernetes Secret holds at most 1 MiB in total, so no key can be larger.
MAX_KEY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Digest:
    """The content digest of one watched path. ``value`` must never be logged.

    ``problems`` name keys that could not be read (path and reason, never content); an
    unreadable key still contributes its error code, so "became unreadable" is a change.
    """

    path: str
    value: bytes
    keys: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Digest(path={self.path!r}, keys={len(self.keys)}, problems={len(self.problems)})"


def _feed(hasher: Any, label: bytes, data: bytes) -> None:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") can never collide.
    hasher.update(len(label).to_bytes(4, "big") + label)
    hasher.update(len(data).to_bytes(8, "big") + data)


#: How deep nested item directories are followed.
_MAX_NESTING = 8
#: Entries (keys, nested files and directories) hashed per watched path, at most. A
#: Secret has at most a few hundred keys; a directory with more is refused loudly.
MAX_ENTRIES = 4096
#: Bytes read per watched path and digest, at most (a Secret holds at most 1 MiB; a
#: projected volume a few of them).
MAX_TOTAL_BYTES = 32 * 1024 * 1024


class _Walk:
    """The state of one digest: what is left of the budget, the directories seen."""

    __slots__ = ("bytes_left", "entries_left", "exhausted", "hasher", "keys", "problems",
                 "seen")

    def __init__(self, hasher: Any, max_entries: int, max_total: int) -> None:
        self.hasher = hasher
        self.entries_left = max_entries
        self.bytes_left = max_total
        self.exhausted = False
        self.keys: list[str] = []
        self.problems: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def stop(self, problem: str) -> None:
        if not self.exhausted:
            self.exhausted = True
            self.problems.append(problem)
            _feed(self.hasher, b"\0", b"\0limit")


def _list_keys(directory: str, limit: int) -> list[str] | None:
    """The sorted names not starting with a dot, or None when there are more than ``limit``
    (read with ``scandir`` and stopped there, so a huge directory costs no memory)."""
    names: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                names.append(entry.name)
                if len(names) > limit:
                    return None
    except OSError:
        return []
    names.sort()
    return names


def digest(
    path: str,
    *,
    max_bytes: int = MAX_KEY_BYTES,
    max_entries: int = MAX_ENTRIES,
    max_total: int = MAX_TOTAL_BYTES,
) -> Digest:
    """Hash the keys of ``path`` (a directory) or the one key ``path`` names (a file).

    Dot-entries (``..data``, the hidden generations) are skipped; key symlinks are
    followed, so the digest is the content the app reads. Directories among the keys
    (nested items: a Secret volume's ``items[].path`` such as ``tls/tls.crt``) are hashed
    with everything in them, by relative path, so a rotation inside one is a change.
    Reads are done with the safe reader (non-blocking open, ``fstat`` of the descriptor
    read, size cap).

    Bounded whatever the directory holds: each directory (by device and inode) is
    entered once, so a link back to itself or to a parent cannot loop or fan out;
    nesting stops at 8 levels; at most ``max_entries`` entries and ``max_total`` bytes
    are hashed. Beyond a limit the digest says so in ``problems`` (the sidecar's
    ``unreadable_key`` warning) instead of reading on.
    """
    path = os.path.abspath(path)
    walk = _Walk(hashlib.sha256(), max_entries, max_total)
    if os.path.isdir(path):
        directory = path
        with contextlib.suppress(OSError):
            st = os.stat(path)
            walk.seen.add((st.st_dev, st.st_ino))
        names = _list_keys(path, max_entries)
        if names is None:
            walk.stop(f"{path}: more than {max_entries} entries; not hashed")
            names = []
    else:
        directory, names = os.path.dirname(path), [os.path.basename(path)]
    for name in names:
        if walk.exhausted:
            break
        _feed_key(walk, directory, name, max_bytes, 0)
    return Digest(path, walk.hasher.digest(), tuple(walk.keys), tuple(walk.problems))


def _feed_key(walk: _Walk, directory: str, name: str, max_bytes: int, depth: int) -> None:
    if walk.entries_left <= 0:
        walk.stop(f"{directory}: more than {MAX_ENTRIES} entries to hash; the rest is not")
        return
    walk.entries_left -= 1
    key_path = os.path.join(directory, name)
    label = name.encode("utf-8", "surrogateescape")
    try:
        st = os.stat(key_path)
    except OSError:
        st = None  # dangling or unreadable: the reader below says why
    if st is not None and stat.S_ISDIR(st.st_mode):
        identity = (st.st_dev, st.st_ino)
        if identity in walk.seen:
            _feed(walk.hasher, label, b"\0dir-seen")  # a link back: hashed once only
            return
        walk.seen.add(identity)
        _feed(walk.hasher, label, b"\0dir")
        if depth < _MAX_NESTING:
            children = _list_keys(key_path, walk.entries_left)
            if children is None:
                walk.stop(f"{key_path}: more entries than the limit of {MAX_ENTRIES}")
                return
            for child in children:
                if walk.exhausted:
                    return
                _feed_key(walk, directory, f"{name}/{child}", max_bytes, depth + 1)
        return
    if walk.bytes_left <= 0:
        walk.stop(f"{directory}: more than {MAX_TOTAL_BYTES} bytes to hash; the rest is not")
        return
    try:
        content, _ = read_secret_file(
            key_path,
            variable=None,
            max_bytes=min(max_bytes, walk.bytes_left),
            strip=False,
            check_permissions=False,
            validate=False,
        )
    except SecretFileTooLargeError as exc:
        if walk.bytes_left < max_bytes:  # over what is left of the budget, not the key cap
            walk.stop(f"{directory}: more than {MAX_TOTAL_BYTES} bytes to hash; the rest"
                      " is not")
            return
        error: SecretFileError = exc
    except SecretFileError as exc:
        error = exc
    else:
        walk.bytes_left -= len(content)
        walk.keys.append(name)
        _feed(walk.hasher, label, content)
        return
    _feed(walk.hasher, label, b"\0error:" + error.code.encode())
    walk.problems.append(str(error))


def combine(digests: Mapping[str, Digest] | Iterable[Digest]) -> bytes:
    """One digest over several watched paths, independent of their order.

    Feed the result to :func:`agentos_secrets.secret.fingerprint_bytes` once per
    confirmed change (never per event): that derivation is deliberately slow.
    """
    items = digests.values() if isinstance(digests, Mapping) else digests
    hasher = hashlib.sha256(b"agentos-secrets/watch/v1")
    for item in sorted(items, key=lambda d: d.path):
        _feed(hasher, item.path.encode("utf-8", "surrogateescape"), item.value)
    return hasher.digest()
