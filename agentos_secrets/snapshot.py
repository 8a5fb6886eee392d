"""``Loader.snapshot``: several keys of a kubelet Secret volume from one generation.

A username and a password rotated together live in one generation directory; reading
them through their per-key symlinks one after the other can straddle a ``..data`` swap
and pair an old username with a new password. :func:`read_generation` resolves
``..data`` once, reads every key from that generation directory, then checks that
``..data`` still points at it. The kubelet deletes the old generation right after the
swap, so a read may also fail half-way: either way the whole read is retried against
the new generation. :func:`take` is the whole of ``Loader.snapshot``: it locates each
name through the chain, reads the kubelet keys of each volume with
:func:`read_generation` and every other name as ``get()`` does.
"""

from __future__ import annotations

import os
import time

from .errors import MissingSecretError, SecretError, SecretFileError, SecretFileNotFoundError
from .files import current_generation, volume_of
from .secret import Secret

TYPE_CHECKING = False  # typing is slow to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    from .origin import Origin
    from .sources import Chain, FileReader

    T = TypeVar("T")

__all__ = ["VolumeChanging", "read_generation", "take", "volume_of"]

#: How many times a read is retried before giving up (the writer swapped every time).
ATTEMPTS = 50

#: How many times ``take`` locates and reads again when a key vanished mid-rotation.
LOCATE_ATTEMPTS = 20


class VolumeChanging(SecretFileError):
    """The volume kept changing (or kept lacking a key) through every attempt."""

    code = "volume-changing"


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


def take(
    keys: list[str],
    chain: Chain,
    read: FileReader,
    read_raw: Callable[[str, str | None], bytes],
    *,
    required: bool,
) -> dict[str, Secret]:
    """The values of the (normalised) ``keys`` as one consistent set: ``{name: Secret}``.

    ``read`` reads a file origin as ``get()`` does (the live cache); ``read_raw(path,
    variable)`` reads one generation's file without caching. A key that vanished from a
    new generation (the kubelet removes its symlink right after the swap) makes it
    locate again, at most ``LOCATE_ATTEMPTS`` times. Missing names raise
    ``MissingSecretError`` listing all of them unless ``required`` is false.
    """
    for attempt in range(LOCATE_ATTEMPTS):
        try:
            result = _take_once(keys, chain, read, read_raw)
        except SecretFileNotFoundError:
            if attempt == LOCATE_ATTEMPTS - 1:
                raise
            time.sleep(0.001 * (attempt + 1))
            continue
        break
    missing = [k for k in keys if k not in result]
    if missing and required:
        listed = ", ".join(missing)
        raise MissingSecretError(f"secret(s) {listed} required but missing", variable=missing[0])
    return result


def _take_once(
    keys: list[str],
    chain: Chain,
    read: FileReader,
    read_raw: Callable[[str, str | None], bytes],
) -> dict[str, Secret]:
    result: dict[str, Secret] = {}
    volumes: dict[str, list[tuple[str, str, Origin]]] = {}
    for key in keys:
        located = chain.locate(key)
        origin = located.chosen
        volume = volume_of(origin.path) if origin is not None and origin.path else None
        if volume is None or origin is None:
            secret = chain.resolve(key, read, located=located)[1]
            if secret is not None:
                result[key] = secret
            continue
        if located.conflict:
            chain.conflict(key)
        volumes.setdefault(volume[0], []).append((key, volume[1], origin))
    for directory, members in volumes.items():
        wanted = list({k: o.variable for _, k, o in members}.items())
        values = read_generation(directory, wanted, read_raw)
        for name, k, origin in members:
            result[name] = Secret(values[k], name=name, source=origin.kind)
    return result
