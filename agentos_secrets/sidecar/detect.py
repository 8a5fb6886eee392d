"""What is mounted now: per-path digests, recomputed only where a hint points.

A hint names a directory; only the watched paths inside it are re-hashed, so with 20
watched Secrets one rotation costs one directory's SHA-256, not twenty. The combined
digest over all paths is the identity the loop compares; it stays in memory (never
logged). Layout warnings (a path that cannot rotate) are recomputed on each re-check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..watch import Digest, Layout, combine, digest, layout_of, watch_directory

__all__ = ["Detector"]


class Detector:
    """Digests of the watched paths (``--watch``), grouped by the directory watched."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: tuple[str, ...] = tuple(dict.fromkeys(os.path.abspath(p) for p in paths))
        self._by_directory: dict[str, list[str]] = {}
        for path in self.paths:
            self._by_directory.setdefault(watch_directory(path), []).append(path)
        self._digests: dict[str, Digest] = {}
        self.combined: bytes = b""

    @property
    def directories(self) -> tuple[str, ...]:
        """The directories to watch (a file path is watched through its directory)."""
        return tuple(self._by_directory)

    def refresh(self, directories: Iterable[str] | None = None) -> bytes:
        """Re-hash the paths in ``directories`` (all when None); return the combined digest."""
        if directories is None:
            paths: Iterable[str] = self.paths
        else:
            paths = [p for d in directories for p in self._by_directory.get(d, ())]
        for path in paths:
            self._digests[path] = digest(path)
        self.combined = combine(self._digests)
        return self.combined

    def missing(self) -> list[str]:
        """Watched paths that do not exist (a typo in ``--watch``, or not mounted yet):
        watched through an existing parent, a rotation inside them would be seen only
        by the periodic re-check."""
        return [p for p in self.paths if not os.path.lexists(p)]

    def problems(self) -> list[str]:
        """Keys that could not be read, by path and reason (never content)."""
        return [p for d in self._digests.values() for p in d.problems]

    def key_count(self) -> int:
        return sum(len(d.keys) for d in self._digests.values())

    def layouts(self) -> list[Layout]:
        return [layout_of(p) for p in self.paths]
