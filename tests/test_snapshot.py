"""``Loader.snapshot``: keys rotated together are read from one kubelet generation."""

from __future__ import annotations

import os
import threading

import pytest

from agentos_secrets import Loader, MissingSecretError, SecretValueError
from agentos_secrets.testing import AtomicWriter

USER, PASSWORD = "DB_USER", "DB_PASSWORD"
ROTATIONS = 1000


def test_thousand_rotations_never_mix_generations(tmp_path, canary):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({USER: "user-0", PASSWORD: f"{canary.value}-0"})
    loader = Loader(env={}, secret_dirs=[volume])
    stop = threading.Event()
    mixed: list[tuple[str, str]] = []
    snapshots = [0]
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                snap = loader.snapshot([USER, PASSWORD])
                user = snap[USER].reveal().removeprefix("user-")
                password = snap[PASSWORD].reveal().removeprefix(f"{canary.value}-")
                if user != password:
                    mixed.append((user, password))  # generation numbers, never values
                snapshots[0] += 1
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for i in range(1, ROTATIONS + 1):
            assert writer.write({USER: f"user-{i}", PASSWORD: f"{canary.value}-{i}"})
            # After each rotation completes, get() returns the new value.
            assert loader.require(USER).reveal() == f"user-{i}"
            assert loader.require(PASSWORD).reveal() == f"{canary.value}-{i}"
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == []
    assert mixed == []
    assert snapshots[0] > 0


def test_a_swap_during_the_read_is_retried(tmp_path, canary, monkeypatch):
    """Rotate between reading the first and the second key: the naive read would pair
    generation 1 with generation 2; the snapshot notices and reads again."""
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({USER: "user-1", PASSWORD: f"{canary.value}-1"})
    loader = Loader(env={}, secret_dirs=[volume])
    real = loader._read_raw
    calls = [0]

    def rotating_read(path: str, variable: str | None) -> bytes:
        calls[0] += 1
        data = real(path, variable)
        if calls[0] == 1:
            writer.write({USER: "user-2", PASSWORD: f"{canary.value}-2"})
        return data

    monkeypatch.setattr(loader, "_read_raw", rotating_read)
    snap = loader.snapshot([USER, PASSWORD])
    assert snap[USER].reveal() == "user-2"
    assert snap[PASSWORD].reveal() == f"{canary.value}-2"
    assert calls[0] > 2, "the first attempt was thrown away"


def test_old_generation_deleted_mid_read_is_retried(tmp_path, canary, monkeypatch):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({USER: "user-1", PASSWORD: f"{canary.value}-1"})
    loader = Loader(env={}, secret_dirs=[volume])
    real = loader._read_raw
    calls = [0]

    def rotating_read(path: str, variable: str | None) -> bytes:
        calls[0] += 1
        if calls[0] == 2:  # the first key was read; now the generation goes away
            writer.write({USER: "user-2", PASSWORD: f"{canary.value}-2"})
        return real(path, variable)

    monkeypatch.setattr(loader, "_read_raw", rotating_read)
    snap = loader.snapshot([USER, PASSWORD])
    assert (snap[USER].reveal(), snap[PASSWORD].reveal()) == ("user-2", f"{canary.value}-2")


def test_one_volume_spelled_two_ways_is_still_one_generation(tmp_path, canary, monkeypatch):
    """DB_USER found through secret_dirs, DB_PASSWORD through a NAME_FILE that spells the
    same volume differently (``/./``): both must come from one generation."""
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({USER: "user-1", PASSWORD: f"{canary.value}-1"})
    env = {f"{PASSWORD}_FILE": f"{volume}/./{PASSWORD}"}
    loader = Loader(env=env, secret_dirs=[volume])
    real = loader._read_raw
    calls = [0]

    def rotating_read(path: str, variable: str | None) -> bytes:
        calls[0] += 1
        if calls[0] == 2:  # DB_USER was read and checked; now the volume rotates
            writer.write({USER: "user-2", PASSWORD: f"{canary.value}-2"})
        return real(path, variable)

    monkeypatch.setattr(loader, "_read_raw", rotating_read)
    snap = loader.snapshot([USER, PASSWORD])
    generations = {snap[USER].reveal()[-1], snap[PASSWORD].reveal()[-1]}
    assert len(generations) == 1, "a snapshot mixed two generations"


def test_names_from_env_files_and_volume_mix(tmp_path, canary):
    volume = tmp_path / "secrets"
    AtomicWriter(volume).write({USER: "user-1", PASSWORD: canary.value})
    plain = tmp_path / "plain"
    plain.write_text("plain-value")
    os.chmod(plain, 0o600)
    env = {
        "FROM_ENV": "env-value",
        "FROM_FILE_FILE": str(plain),
        f"{PASSWORD}_FILE": str(volume / PASSWORD),  # a NAME_FILE inside a volume
    }
    provider = {"FROM_PROVIDER": "provided-value"}.get
    loader = Loader(env=env, secret_dirs=[volume], provider=provider)
    snap = loader.snapshot(["FROM_ENV", "FROM_FILE", "FROM_PROVIDER", USER, PASSWORD])
    assert {k: v.reveal() for k, v in snap.items()} == {
        "FROM_ENV": "env-value",
        "FROM_FILE": "plain-value",
        "FROM_PROVIDER": "provided-value",
        USER: "user-1",
        PASSWORD: canary.value,
    }
    assert snap[PASSWORD].source == "file" and snap[USER].source == "directory"
    assert snap["FROM_PROVIDER"].source == "provider"
    canary.assert_absent(repr(snap), str(snap))


def test_missing_names(tmp_path, canary):
    volume = tmp_path / "secrets"
    AtomicWriter(volume).write({USER: canary.value})
    loader = Loader(env={}, secret_dirs=[volume])
    with pytest.raises(MissingSecretError) as info:
        loader.snapshot([USER, "NOPE_ONE", "NOPE_TWO"])
    assert "NOPE_ONE" in str(info.value) and "NOPE_TWO" in str(info.value)
    assert list(loader.snapshot([USER, "NOPE_ONE"], required=False)) == [USER]
    canary.assert_absent(str(info.value))


def test_a_key_removed_from_the_secret_is_missing(tmp_path, canary):
    volume = tmp_path / "secrets"
    writer = AtomicWriter(volume)
    writer.write({USER: "u", PASSWORD: canary.value})
    loader = Loader(env={}, secret_dirs=[volume])
    writer.write({USER: "u"})
    assert list(loader.snapshot([USER, PASSWORD], required=False)) == [USER]


def test_bad_key_error_names_the_stable_path(tmp_path, canary):
    volume = tmp_path / "secrets"
    AtomicWriter(volume).write({USER: "u", PASSWORD: " \n"})
    loader = Loader(env={}, secret_dirs=[volume])
    with pytest.raises(SecretValueError) as info:
        loader.snapshot([USER, PASSWORD])
    message = str(info.value)
    assert os.path.join(str(volume), PASSWORD) in message
    assert "..20" not in message  # not the hidden generation directory
    assert info.value.path == os.path.join(str(volume), PASSWORD)
