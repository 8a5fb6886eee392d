"""The live cache on its own (``agentos_secrets.cache``): hits, racy entries, last good
values, failure marks, and reads that race a kubelet swap.

The Loader-level behaviour (rotation followed through ``get()``) is in ``test_live.py``;
here the cache is driven directly, with a :class:`Chain` to locate names as the Loader
does, and real files (the kubelet layout written by ``AtomicWriter``).
"""

from __future__ import annotations

import os
import shutil

import pytest

import agentos_secrets.cache as cache_module
from agentos_secrets import Loader, SecretFileNotFoundError, SecretFileNotRegularError
from agentos_secrets.cache import LiveCache, read_settled
from agentos_secrets.secret import Secret
from agentos_secrets.sources import Chain
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_SERVICE_TOKEN"
OPTIONS = {"max_bytes": 65536, "strip": True, "check_permissions": True}


def _age(path: str, seconds: float = 3600.0) -> None:
    """Backdate a file so that it is not racy (written less than 2 s ago)."""
    st = os.stat(path)
    past = st.st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(past, past))


def _write(path, text: str) -> str:
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return str(path)


class _Setup:
    """A chain and a cache wired as the Loader wires them; ``replaced`` records calls."""

    def __init__(self, env: dict[str, str], secret_dirs=()) -> None:
        self.chain = Chain(
            env, secret_dirs, None, "warn", strip=True, use_credentials_directory=False
        )
        self.replaced: list[tuple[str, Secret]] = []
        self.cache = LiveCache(
            self.chain.lookup, replaced=lambda n, s: self.replaced.append((n, s)), **OPTIONS
        )

    def resolve(self, name: str = NAME) -> Secret | None:
        """A miss, as ``Loader._resolve`` handles it."""
        located, secret = self.chain.resolve(name, self.cache.read)
        if secret is not None:
            self.cache.remember(name, located, secret)
        return secret


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The paths the cache opens, in order."""
    seen: list[str] = []
    real = cache_module.read_secret_file

    def counting(path, **kwargs):
        seen.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(cache_module, "read_secret_file", counting)
    return seen


def test_a_remembered_file_hits_until_it_changes(tmp_path, canary, reads):
    path = _write(tmp_path / "token", canary.value)
    _age(path)
    setup = _Setup({f"{NAME}_FILE": path})
    assert setup.cache.hit(NAME) is None  # nothing remembered yet
    assert setup.resolve().reveal() == canary.value
    assert setup.cache.hit(NAME).reveal() == canary.value
    assert reads == [path]
    _write(tmp_path / "token.new", canary.value + "-2")
    os.rename(tmp_path / "token.new", path)  # a new inode
    assert setup.cache.hit(NAME) is None
    assert setup.resolve().reveal() == canary.value + "-2"
    assert [n for n, _ in setup.replaced] == [NAME]
    assert setup.replaced[0][1].reveal() == canary.value


def test_a_racy_entry_never_hits(tmp_path, canary, reads):
    path = _write(tmp_path / "token", canary.value)  # just written: racy
    setup = _Setup({f"{NAME}_FILE": path})
    setup.resolve()
    assert setup.cache.hit(NAME) is None
    assert setup.resolve().reveal() == canary.value
    assert len(reads) == 2, "a racy entry is re-read and compared by content"


def test_an_environment_change_misses(tmp_path, canary):
    env = {NAME: canary.value}
    setup = _Setup(env)
    setup.resolve()
    assert setup.cache.hit(NAME).reveal() == canary.value
    env[f"{NAME}_FILE"] = "/nowhere"
    assert setup.cache.hit(NAME) is None, "NAME_FILE decides too (a conflict now)"


def test_an_earlier_directory_gaining_the_key_misses(tmp_path, canary):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _age(_write(second / NAME, canary.value))
    setup = _Setup({}, [first, second])
    setup.resolve()
    assert setup.cache.hit(NAME) is not None
    _write(first / NAME, canary.value + "-first")
    assert setup.cache.hit(NAME) is None


def test_a_failed_reread_keeps_the_last_good_value_and_is_not_retried(tmp_path, canary, reads):
    path = _write(tmp_path / "token", canary.value)
    _age(path)
    setup = _Setup({f"{NAME}_FILE": path})
    setup.resolve()
    os.remove(path)
    os.mkdir(path)  # now a directory: unreadable as a secret
    for _ in range(3):
        assert setup.resolve().reveal() == canary.value
    assert reads == [path, path], "the failed version is read once"
    error = setup.cache.error_of(path)
    assert isinstance(error, SecretFileNotRegularError)
    assert setup.cache.errors() == {path: str(error)}
    assert setup.cache.hit(NAME) is None, "a kept value is never a hit"
    os.rmdir(path)
    _write(path, canary.value + "-2")
    assert setup.resolve().reveal() == canary.value + "-2"
    assert setup.cache.errors() == {}
    canary.assert_absent(str(error), repr(error))


def test_a_first_read_failure_raises(tmp_path, canary):
    setup = _Setup({f"{NAME}_FILE": str(tmp_path / "missing")})
    with pytest.raises(SecretFileNotFoundError):
        setup.resolve()


# -- reads racing a kubelet swap (issue 11, class 9) -------------------------------------


def _loses_the_race_once(monkeypatch, writer: AtomicWriter, payload: dict[str, str]):
    """Make the next read of a key lose the race with a swap, for real: the key resolves
    to the current generation's file, then the writer swaps ``..data`` and deletes that
    generation, then the open happens (on the generation's file, now gone: ENOENT, as
    the kernel would see it had it walked ``..data`` just before the swap)."""
    real = cache_module.read_secret_file
    calls: list[str] = []

    def racing(path, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            resolved = os.path.realpath(path)
            writer.write(payload)
            return real(resolved, **kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(cache_module, "read_secret_file", racing)
    return calls


def test_a_brand_new_loaders_first_get_survives_a_swap(tmp_path, canary, monkeypatch):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-1"})
    calls = _loses_the_race_once(monkeypatch, writer, {NAME: canary.value + "-2"})
    loader = Loader(env={}, secret_dirs=[writer.target_dir])
    assert loader.require(NAME).reveal() == canary.value + "-2"
    assert len(calls) == 2
    assert loader.errors() == {}


def test_a_first_get_through_name_file_survives_a_swap(tmp_path, canary, monkeypatch):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-1"})
    _loses_the_race_once(monkeypatch, writer, {NAME: canary.value + "-2"})
    loader = Loader(env={f"{NAME}_FILE": os.path.join(writer.target_dir, NAME)})
    assert loader.get(NAME).reveal() == canary.value + "-2"


def test_a_really_dangling_key_fails_after_one_retry(tmp_path, canary, reads):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value})
    shutil.rmtree(os.path.join(writer.target_dir, str(writer.current_generation())))
    path = os.path.join(writer.target_dir, NAME)
    with pytest.raises(SecretFileNotFoundError, match="dangling symlink"):
        read_settled(path, variable=None, **OPTIONS)
    assert reads == [path, path], "the generation held still: one retry, then its truth"


def test_a_missing_file_outside_a_volume_is_not_retried(tmp_path, reads):
    path = str(tmp_path / "missing")
    with pytest.raises(SecretFileNotFoundError):
        read_settled(path, variable="X_FILE", **OPTIONS)
    assert reads == [path]


def test_other_errors_are_not_retried(tmp_path, reads):
    writer = AtomicWriter(tmp_path / "secrets", mode=0o666)
    writer.write({NAME: "value"})
    path = os.path.join(writer.target_dir, NAME)
    with pytest.raises(Exception, match="writable by group or others"):
        read_settled(path, variable=None, **OPTIONS)
    assert reads == [path]


def test_a_volume_that_never_holds_still_is_retried_a_bounded_number_of_times(
    tmp_path, canary, monkeypatch
):
    writer = AtomicWriter(tmp_path / "secrets")
    writer.write({NAME: canary.value + "-0"})
    real = cache_module.read_secret_file
    calls: list[str] = []

    def always_racing(path, **kwargs):
        calls.append(path)
        resolved = os.path.realpath(path)
        writer.write({NAME: f"{canary.value}-{len(calls)}"})
        return real(resolved, **kwargs)

    monkeypatch.setattr(cache_module, "read_secret_file", always_racing)
    path = os.path.join(writer.target_dir, NAME)
    with pytest.raises(SecretFileNotFoundError) as info:
        read_settled(path, variable=None, attempts=5, **OPTIONS)
    assert len(calls) == 5
    canary.assert_absent(str(info.value), repr(info.value))
