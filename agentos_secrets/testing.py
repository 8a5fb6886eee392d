"""Fakes that follow the real algorithms, for tests, demos and benchmarks.

No Kubernetes cluster runs where this project is tested, so :class:`AtomicWriter` plays
the kubelet: it writes a Secret volume exactly as ``pkg/volume/util/atomic_writer.go``
does (``AtomicWriter.Write``):

1. if the payload equals what the current generation holds, write nothing;
2. create a new hidden generation dir ``..<UTC timestamp>.<random>`` and write every key
   into it with its mode;
3. create the symlink ``..data_tmp`` -> the new generation and rename it over ``..data``
   (the one atomic step that switches every key at once);
4. create a per-key symlink ``KEY -> ..data/KEY`` for keys that are new, and remove the
   per-key symlinks of keys that vanished;
5. remove the old generation dir.

Service authors may use it in their own tests of code built on the Loader.
"""

from __future__ import annotations

import os
import secrets as _random
import shutil
import time
from collections.abc import Mapping

__all__ = ["AtomicWriter"]

DATA_DIR_NAME = "..data"
_DATA_TMP = "..data_tmp"


class AtomicWriter:
    """Write a kubelet-style Secret volume at ``target_dir``.

    :param mode: the file mode of each key (the kubelet's ``defaultMode``, 0644).
    """

    def __init__(self, target_dir: str | os.PathLike[str], *, mode: int = 0o644) -> None:
        self.target_dir = os.fspath(target_dir)
        self.mode = mode
        os.makedirs(self.target_dir, exist_ok=True)

    # -- reading back -------------------------------------------------------------------
    def current_generation(self) -> str | None:
        try:
            return os.readlink(os.path.join(self.target_dir, DATA_DIR_NAME))
        except OSError:
            return None

    def _current_payload(self) -> dict[str, bytes] | None:
        generation = self.current_generation()
        if generation is None:
            return None
        gen_dir = os.path.join(self.target_dir, generation)
        payload: dict[str, bytes] = {}
        try:
            for key in os.listdir(gen_dir):
                with open(os.path.join(gen_dir, key), "rb") as handle:
                    payload[key] = handle.read()
        except OSError:
            return None
        return payload

    # -- writing ------------------------------------------------------------------------
    def write(self, payload: Mapping[str, str | bytes]) -> bool:
        """Project ``payload`` (key -> content) into the volume.

        Returns True when something was written, False when the payload was unchanged.
        """
        data = {
            key: value.encode("utf-8") if isinstance(value, str) else bytes(value)
            for key, value in payload.items()
        }
        for key in data:
            if not key or key.startswith(".") or "/" in key:
                raise ValueError(f"invalid key {key!r}")
        old_generation = self.current_generation()
        old_payload = self._current_payload()
        if old_payload == data:
            return False

        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        new_generation = f"..{stamp}.{_random.randbelow(10**9):09d}"
        gen_dir = os.path.join(self.target_dir, new_generation)
        os.mkdir(gen_dir, 0o755)
        for key, content in data.items():
            path = os.path.join(gen_dir, key)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            os.chmod(path, self.mode)

        tmp_link = os.path.join(self.target_dir, _DATA_TMP)
        os.symlink(new_generation, tmp_link)
        os.rename(tmp_link, os.path.join(self.target_dir, DATA_DIR_NAME))

        for key in data:
            link = os.path.join(self.target_dir, key)
            if not os.path.lexists(link):
                os.symlink(os.path.join(DATA_DIR_NAME, key), link)
        for key in old_payload or {}:
            if key not in data:
                link = os.path.join(self.target_dir, key)
                if os.path.islink(link):
                    os.unlink(link)

        if old_generation and old_generation != new_generation:
            shutil.rmtree(os.path.join(self.target_dir, old_generation), ignore_errors=True)
        return True
