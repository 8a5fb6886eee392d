"""Values that follow the file: re-read on change only, keep the last good value on a bad
re-read, notice the environment changing, and never show a value while doing it."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from agentos_secrets import Loader, SecretFileTooLargeError
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_SERVICE_TOKEN"


def _write(path, text: str | bytes, mode: int = 0o600) -> None:
    """Write in place (same inode): what a non-atomic writer does."""
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _replace(path, text: str) -> None:
    """Write a new file and rename it over ``path``: what docker and editors do."""
    tmp = f"{path}.tmp"
    _write(tmp, text)
    os.rename(tmp, path)


def _age(path, seconds: float = 3600.0) -> None:
    """Backdate a file so the Loader does not treat it as freshly (racily) written."""
    st = os.stat(path)
    past = st.st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(past, past))


def _count_reads(monkeypatch) -> list[str]:
    import agentos_secrets.cache as cache_module

    reads: list[str] = []
    real = cache_module.read_secret_file

    def counting(path, **kwargs):
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(cache_module, "read_secret_file", counting)
    return reads


# -- kubelet volume -----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["secret_dirs", "NAME_FILE"])
def test_kubelet_rotation_is_followed(tmp_path, canary, via):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({NAME: canary.value + "-1"})
    if via == "secret_dirs":
        loader = Loader(env={}, secret_dirs=[volume])
    else:
        loader = Loader(env={f"{NAME}_FILE": str(volume / NAME)})
    first = loader.require(NAME)
    assert first.reveal() == canary.value + "-1"
    assert writer.write({NAME: canary.value + "-2"})
    second = loader.require(NAME)
    assert second.reveal() == canary.value + "-2"
    assert writer.write({NAME: canary.value + "-3"})
    assert loader.get(NAME).reveal() == canary.value + "-3"
    canary.assert_absent(repr(second), str(second), loader.explain(NAME), loader.errors())


def test_unchanged_payload_writes_nothing_and_reads_nothing(tmp_path, canary, monkeypatch):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({NAME: canary.value})
    generation = writer.current_generation()
    for entry in os.listdir(volume):
        if not os.path.islink(volume / entry):
            for key in os.listdir(volume / entry):
                _age(volume / entry / key)
    loader = Loader(env={}, secret_dirs=[volume])
    first = loader.require(NAME)
    reads = _count_reads(monkeypatch)
    assert writer.write({NAME: canary.value}) is False
    assert writer.current_generation() == generation
    for _ in range(50):
        assert loader.require(NAME) is first
    assert reads == []


def test_kubelet_key_removed_and_added(tmp_path, canary):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({NAME: canary.value, "OTHER": "x"})
    loader = Loader(env={}, secret_dirs=[volume])
    assert loader.get(NAME) is not None
    writer.write({"OTHER": "x"})
    assert loader.get(NAME) is None
    assert not os.path.lexists(volume / NAME)
    writer.write({"OTHER": "x", NAME: canary.value + "-back"})
    assert loader.require(NAME).reveal() == canary.value + "-back"


# -- plain files --------------------------------------------------------------------------


def test_plain_file_replaced_by_rename(tmp_path, canary):
    path = tmp_path / "token"
    _write(path, canary.value + "-old")
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    assert loader.require(NAME).reveal() == canary.value + "-old"
    _replace(path, canary.value + "-new")
    assert loader.require(NAME).reveal() == canary.value + "-new"


def test_plain_file_written_in_place(tmp_path, canary):
    path = tmp_path / "token"
    _write(path, canary.value + "-old")
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    assert loader.require(NAME).reveal() == canary.value + "-old"
    _write(path, canary.value + "-newer")
    assert loader.require(NAME).reveal() == canary.value + "-newer"


def test_racy_rewrite_with_same_size_and_mtime_is_caught(tmp_path, canary):
    """Coarse timestamps: a rewrite in the same tick keeps size and mtime. The entry is
    fresh, so it is compared by content until it has aged."""
    path = tmp_path / "token"
    _write(path, canary.value + "-A")
    st = os.stat(path)
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    old = loader.require(NAME)
    _write(path, canary.value + "-B")  # same length
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same tick
    assert os.stat(path).st_size == st.st_size
    new = loader.require(NAME)
    assert new.reveal() == canary.value + "-B"
    assert loader.verify(NAME, old) == "previous"  # the rotation was seen


def test_unchanged_old_file_costs_no_read(tmp_path, canary, monkeypatch):
    path = tmp_path / "token"
    _write(path, canary.value)
    _age(path)
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    first = loader.require(NAME)
    reads = _count_reads(monkeypatch)
    for _ in range(100):
        assert loader.get(NAME) is first
    assert reads == []
    os.chmod(path, 0o400)  # a chmod changes neither content nor identity
    assert loader.get(NAME) is first
    assert reads == []


# -- a failed re-read keeps the last good value --------------------------------------------


@pytest.mark.parametrize(
    "breakage",
    ["empty", "whitespace", "too-large", "nul", "not-utf8", "deleted", "insecure"],
)
def test_failed_reread_keeps_last_good_value(tmp_path, canary, caplog, breakage):
    path = tmp_path / "token"
    _write(path, canary.value)
    loader = Loader(env={f"{NAME}_FILE": str(path)}, max_bytes=1024)
    good = loader.require(NAME)
    if breakage == "empty":
        _write(path, "")
    elif breakage == "whitespace":
        _write(path, " \n")
    elif breakage == "too-large":
        _write(path, canary.value * 100)
    elif breakage == "nul":
        _write(path, canary.value + "\0")
    elif breakage == "not-utf8":
        _write(path, canary.value_bytes + b"\xff")
    elif breakage == "deleted":
        os.unlink(path)
    elif breakage == "insecure":
        _write(path, canary.value + "-new")
        os.chmod(path, 0o666)
    with caplog.at_level(logging.WARNING, logger="agentos_secrets"):
        for _ in range(5):
            assert loader.require(NAME) is good
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per failing version of the file"
    message = warnings[0].getMessage()
    assert NAME in message and str(path) in message
    errors = loader.errors()
    assert list(errors) == [str(path)]
    explanation = loader.explain(NAME)
    assert explanation.found and explanation.rotates
    assert explanation.error and str(path) in explanation.error
    assert any("last good value is kept" in note for note in explanation.notes)
    canary.assert_absent(message, errors, explanation, explanation.as_dict())

    _write(path, canary.value + "-fixed")
    os.chmod(path, 0o600)
    assert loader.require(NAME).reveal() == canary.value + "-fixed"
    assert loader.errors() == {}
    assert loader.explain(NAME).error is None


@pytest.mark.parametrize("repair", ["chmod", "unreadable"])
def test_a_failed_version_repaired_in_place_is_read(tmp_path, canary, repair):
    """A new version that failed on its mode is read once chmod repairs it: no new
    inode, mtime or size, only a new ctime (a writer creating the file with a loose
    umask and fixing it right after)."""
    if repair == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file")
    path = tmp_path / "token"
    _write(path, canary.value)
    _age(path)
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    assert loader.require(NAME).reveal() == canary.value
    tmp = tmp_path / "token.tmp"
    _write(tmp, canary.value + "-new", mode=0o600)
    os.chmod(tmp, 0o664 if repair == "chmod" else 0o000)
    _age(tmp)
    os.rename(tmp, path)
    assert loader.require(NAME).reveal() == canary.value  # kept: the new version failed
    assert list(loader.errors()) == [str(path)]
    os.chmod(path, 0o600)
    assert loader.require(NAME).reveal() == canary.value + "-new"
    assert loader.errors() == {}


def test_a_version_swapped_in_during_a_failed_read_is_read(tmp_path, canary, monkeypatch):
    """The kubelet deletes the old generation right after the swap, so a re-read can fail
    on a version that is already gone; the failure must not be pinned on the version that
    replaced it (which would keep the old value until the next rotation)."""
    import agentos_secrets.cache as cache_module
    from agentos_secrets import SecretFileNotFoundError

    volume = AtomicWriter(tmp_path / "secrets")
    volume.write({NAME: canary.value + "-1"})
    loader = Loader(env={}, secret_dirs=[volume.target_dir])
    assert loader.require(NAME).reveal() == canary.value + "-1"
    volume.write({NAME: canary.value + "-2"})
    real = cache_module.read_secret_file
    failed: list[str] = []

    def swapped_while_reading(path, **kwargs):
        # The read of -2 loses the race with the next rotation, and so does the one retry
        # a not-found key of a kubelet volume gets (tests/test_cache.py).
        if len(failed) < 2:
            if not failed:
                volume.write({NAME: canary.value + "-3"})
            failed.append(path)
            raise SecretFileNotFoundError(f"{path}: no such file", path=path)
        return real(path, **kwargs)

    monkeypatch.setattr(cache_module, "read_secret_file", swapped_while_reading)
    assert loader.require(NAME).reveal() == canary.value + "-1"  # kept, as it failed
    assert loader.require(NAME).reveal() == canary.value + "-3"
    assert loader.errors() == {}


def test_first_read_failure_raises_naming_variable_and_path(tmp_path, canary):
    path = tmp_path / "token"
    _write(path, canary.value * 100)
    loader = Loader(env={f"{NAME}_FILE": str(path)}, max_bytes=64)
    with pytest.raises(SecretFileTooLargeError) as info:
        loader.get(NAME)
    assert f"{NAME}_FILE" in str(info.value) and str(path) in str(info.value)
    canary.assert_absent(str(info.value), repr(info.value))


# -- explain says what rotates -------------------------------------------------------------


def test_explain_says_whether_a_value_rotates(tmp_path, canary):
    path = tmp_path / "token"
    _write(path, canary.value)
    file_backed = Loader(env={f"{NAME}_FILE": str(path)}).explain(NAME)
    env_backed = Loader(env={NAME: canary.value}).explain(NAME)
    assert file_backed.rotates and "follows the file" in str(file_backed)
    assert not env_backed.rotates and "static" in str(env_backed)
    canary.assert_absent(file_backed, env_backed, file_backed.as_dict(), env_backed.as_dict())


# -- the hot path never hides a change of the environment ----------------------------------


def test_environment_changes_are_noticed(tmp_path, canary):
    first_file = tmp_path / "one"
    second_file = tmp_path / "two"
    _write(first_file, canary.value + "-one")
    _write(second_file, canary.value + "-two")
    env: dict[str, str] = {f"{NAME}_FILE": str(first_file)}
    loader = Loader(env=env)
    assert loader.require(NAME).reveal() == canary.value + "-one"
    assert loader.require(NAME).reveal() == canary.value + "-one"  # through the hot path
    env[f"{NAME}_FILE"] = str(second_file)
    assert loader.require(NAME).reveal() == canary.value + "-two"
    env[NAME] = canary.value + "-env"  # NAME wins (with one conflict warning)
    assert loader.require(NAME).reveal() == canary.value + "-env"
    assert loader.require(NAME).reveal() == canary.value + "-env"
    env[NAME] = canary.value + "-env2"
    assert loader.require(NAME).reveal() == canary.value + "-env2"
    del env[NAME], env[f"{NAME}_FILE"]
    assert loader.get(NAME) is None


def test_os_environ_changes_are_noticed(tmp_path, canary, monkeypatch):
    path = tmp_path / "token"
    _write(path, canary.value + "-file")
    monkeypatch.setenv(f"{NAME}_FILE", str(path))
    monkeypatch.delenv(NAME, raising=False)
    loader = Loader()
    assert loader.require(NAME).reveal() == canary.value + "-file"
    assert loader.require(NAME).reveal() == canary.value + "-file"
    monkeypatch.setenv(NAME, canary.value + "-env")
    assert loader.require(NAME).reveal() == canary.value + "-env"
    monkeypatch.delenv(NAME)
    monkeypatch.delenv(f"{NAME}_FILE")
    assert loader.get(NAME) is None


def test_a_file_appearing_in_an_earlier_directory_wins(tmp_path, canary):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _write(second / NAME, canary.value + "-second")
    loader = Loader(env={}, secret_dirs=[first, second])
    assert loader.require(NAME).reveal() == canary.value + "-second"
    assert loader.require(NAME).reveal() == canary.value + "-second"
    _write(first / NAME, canary.value + "-first")
    assert loader.require(NAME).reveal() == canary.value + "-first"


def test_credentials_directory_change_is_noticed(tmp_path, canary):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _write(one / NAME, canary.value + "-one")
    _write(two / NAME, canary.value + "-two")
    env = {"CREDENTIALS_DIRECTORY": str(one)}
    loader = Loader(env=env)
    assert loader.require(NAME).reveal() == canary.value + "-one"
    assert loader.require(NAME).reveal() == canary.value + "-one"
    env["CREDENTIALS_DIRECTORY"] = str(two)
    assert loader.require(NAME).reveal() == canary.value + "-two"


# -- threads ------------------------------------------------------------------------------


def test_concurrent_readers_only_see_whole_values(tmp_path, canary):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({NAME: f"{canary.value}-0"})
    loader = Loader(env={}, secret_dirs=[volume])
    valid = {f"{canary.value}-{i}" for i in range(200)}
    seen_bad: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if loader.require(NAME).reveal() not in valid:
                seen_bad.append(1)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for i in range(1, 200):
            writer.write({NAME: f"{canary.value}-{i}"})
            assert loader.require(NAME).reveal() == f"{canary.value}-{i}"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert seen_bad == []


def test_explain_says_a_single_mounted_file_never_rotates(tmp_path, canary, monkeypatch):
    """A subPath mount is a mount point of its own: the kubelet never updates it."""
    import agentos_secrets.layouts as layouts  # layout_of looks its mounts up there

    path = tmp_path / "token"
    _write(path, canary.value)
    loader = Loader(env={f"{NAME}_FILE": str(path)})
    assert loader.explain(NAME).rotates
    monkeypatch.setattr(layouts, "_mount_points", lambda: {str(path)})
    explanation = loader.explain(NAME)
    assert not explanation.rotates
    assert any("subPath" in note for note in explanation.notes)
    assert "static" in str(explanation)
    canary.assert_absent(explanation)
