"""Whether a watched path can rotate at all: its layout, from the file system and mounts.

A directory that is a kubelet volume (it holds ``..data``) rotates; a key symlink inside
one follows rotations through its directory. A plain file that is a mount point, or a
file outside any kubelet volume, is what a ``subPath`` mount looks like: the kubelet
never updates it (kubernetes issue 50345), so :func:`layout_of` returns it with a
warning saying why. Mount points come from ``/proc/self/mountinfo`` (read bounded).

Kept apart from the watcher and the digest: it is asked once per path (start-up, the
periodic re-check, ``explain``), never per event.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from .errors import SecretFileError
from .files import DATA_LINK, is_kubelet_volume, read_bounded

__all__ = ["Layout", "LayoutKind", "layout_of", "parse_mountinfo"]


LayoutKind = Literal[
    "kubelet-volume", "kubelet-key", "directory", "file", "mounted-file", "missing"
]


@dataclass(frozen=True, slots=True)
class Layout:
    """What a watched path is, and whether the kubelet can rotate it."""

    path: str
    kind: LayoutKind
    warning: str | None = None

    @property
    def rotates(self) -> bool:
        return self.kind not in ("mounted-file", "file")


_OCTAL_RE = re.compile(r"\\([0-7]{3})")


def parse_mountinfo(text: str) -> set[str]:
    """The mount points (field 5) of a ``/proc/PID/mountinfo`` text.

    The kernel writes space, tab, newline and backslash in paths as octal escapes
    (``\\040``), which are decoded here.
    """
    points: set[str] = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(_OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _mount_points() -> set[str]:
    """Mount points of this process, or empty when ``/proc`` cannot say."""
    try:
        raw = read_bounded("/proc/self/mountinfo", what="mountinfo", max_bytes=4 * 1024 * 1024)
    except SecretFileError:
        return set()
    return parse_mountinfo(raw.decode("utf-8", "replace"))


def layout_of(path: str) -> Layout:
    """Classify ``path``; a layout that cannot rotate carries a warning saying why."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        if is_kubelet_volume(path):
            return Layout(path, "kubelet-volume")
        return Layout(path, "directory")
    if not os.path.lexists(path):
        return Layout(
            path, "missing", f"{path}: does not exist (yet); watching {os.path.dirname(path)}"
        )
    directory = os.path.dirname(path)
    if path in _mount_points():
        return Layout(
            path,
            "mounted-file",
            f"{path}: is a single mounted file (a subPath mount): the kubelet never updates"
            " it; mount the whole Secret volume and watch its directory",
        )
    if is_kubelet_volume(directory):
        if os.path.islink(path):
            return Layout(path, "kubelet-key")
        return Layout(
            path,
            "file",
            f"{path}: is a plain file inside a kubelet volume (not a link into {DATA_LINK}):"
            " it will not follow rotations",
        )
    return Layout(
        path,
        "file",
        f"{path}: is a plain file, not a key of a kubelet Secret volume (no {DATA_LINK} beside"
        " it); if it is a subPath mount it will never rotate: mount the whole volume",
    )
