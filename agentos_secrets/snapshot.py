"""Reading several keys of a kubelet Secret volume from one generation.

A username and a password rotated together live in one generation directory; reading
them through their per-key symlinks one after the other can straddle a ``..data`` swap
and pair an old username with a new password. :func:`read_generation` resolves
``..data`` once, reads every key from that generation directory, then checks that
``..data`` still points at it. The kubelet deletes the old generation right after the
swap, so a read may also fail half-way: either way the whole read is retried against
the new generation.
"""

from __future__ import annotations

import os

from .errors import SecretError, SecretFileError, SecretFileNotFoundError
from .files import current_generation, is_kubelet_volume

TYPE_CHECKING = False  # typing is slow to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["VolumeChanging", "read_generation", "volume_of"]

#: How many times a read is retried before giving up (the writer swapped every time).
ATTEMPTS = 50


class VolumeChanging(SecretFileError):
    """The volume kept changing (or kept lacking a key) through every attempt."""

    code = "volume-changing"


def volume_of(path: str) -> tuple[str, str] | None:
    """``(directory, key)`` when ``path`` is a key of a kubelet volume, else None.

    Dot-entries (``..data``, generation dirs) are never keys. The directory is
    normalised (``/v/./K``, ``/v//K``), so that every key of one volume is read in the
    same generation, whichever way its path was written.
    """
    directory, key = os.path.split(path)
    if not key or key.startswith(".") or not directory:
        return None
    directory = os.path.normpath(directory)
    if not is_kubelet_volume(directory):
        return None
    return directory, key


def _retarget(exc: SecretError, inner: str, outer: str) -> SecretError:
    """The same error, naming the stable key path the user configured."""
    message = str(exc).replace(inner, outer)
    return type(exc)(message, variable=exc.variable, path=outer)


def read_generation(
    directory: str,
    keys: Sequence[tuple[str, str | None]],
    read: Callable[[str, str | None], T],
    *,
    attempts: int = ATTEMPTS,
) -> dict[str, T]:
    """Read ``keys`` (key, variable) from the one generation ``..data`` points at.

    ``read(path, variable)`` reads one file (the Loader's safe reader). Returns key ->
    result. Raises the reader's error (naming ``directory/key``) when the generation did
    not change while it failed (a key missing from the generation raises
    :class:`SecretFileNotFoundError`: the caller may locate again, since the kubelet
    removes a vanished key's symlink just after the swap), and :class:`VolumeChanging`
    after ``attempts`` swaps.
    """
    for _ in range(attempts):
        generation = current_generation(directory)
        if generation is None:
            raise SecretFileNotFoundError(
                f"{directory}: is no longer a kubelet Secret volume (no ..data link)",
                path=directory,
            )
        base = os.path.join(directory, generation)
        results: dict[str, T] = {}
        failure: tuple[SecretError, str, str] | None = None
        for key, variable in keys:
            inner = os.path.join(base, key)
            try:
                results[key] = read(inner, variable)
            except SecretError as exc:
                failure = (exc, inner, os.path.join(directory, key))
                break
        if current_generation(directory) != generation:
            continue  # swapped during the read: start again on the new generation
        if failure is None:
            return results
        # The generation held still, so the failure is its truth (a bad file, or a key
        # this generation lacks): report it under the path the user configured.
        exc, inner, outer = failure
        raise _retarget(exc, inner, outer) from None
    raise VolumeChanging(
        f"{directory}: the volume changed during each of {attempts} attempts to read it",
        path=directory,
    )
