"""``Loader.verify``: current, previous within the grace window, explicit NAME_PREVIOUS,
constant-time comparison against every accepted value, and no value ever shown."""

from __future__ import annotations

import hmac
import logging

import pytest

from agentos_secrets import Loader, MissingSecretError, Secret
from agentos_secrets.testing import AtomicWriter

NAME = "AGENTOS_FED_SHARED_SECRET"


class FakeClock:
    """A monotonic clock the test moves by hand: no sleeping for the grace window."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def volume(tmp_path):
    return AtomicWriter(tmp_path / "secrets")


def _loader(volume: AtomicWriter, clock: FakeClock, **kwargs) -> Loader:
    return Loader(env=kwargs.pop("env", {}), secret_dirs=[volume.target_dir], clock=clock, **kwargs)


def test_current_and_wrong(volume, canary):
    volume.write({NAME: canary.value})
    loader = _loader(volume, FakeClock())
    assert loader.verify(NAME, canary.value) == "current"
    assert loader.verify(NAME, canary.value_bytes) == "current"
    assert loader.verify(NAME, Secret(canary.value)) == "current"
    assert loader.verify(NAME, canary.value + "x") is None
    assert loader.verify(NAME, canary.value[:-1]) is None
    assert loader.verify(NAME, "") is None
    assert loader.verify(NAME, " " + canary.value) is None  # byte-exact, not trimmed


def test_previous_within_grace_then_none_after(volume, canary):
    clock = FakeClock()
    old, new = canary.value + "-old", canary.value + "-new"
    volume.write({NAME: old})
    loader = _loader(volume, clock, grace=600.0)
    assert loader.verify(NAME, old) == "current"
    volume.write({NAME: new})
    # verify() itself notices the rotation (no get() in between).
    assert loader.verify(NAME, old) == "previous"
    assert loader.verify(NAME, new) == "current"
    clock.now += 599.0
    assert loader.verify(NAME, old) == "previous"
    assert "1 value(s) replaced by a rotation" in str(loader.explain(NAME))
    clock.now += 2.0
    assert loader.verify(NAME, old) is None
    assert loader.verify(NAME, new) == "current"


def test_two_rotations_inside_the_window(volume, canary):
    clock = FakeClock()
    volume.write({NAME: canary.value + "-1"})
    loader = _loader(volume, clock, grace=600.0)
    loader.get(NAME)
    volume.write({NAME: canary.value + "-2"})
    loader.get(NAME)
    clock.now += 300.0
    volume.write({NAME: canary.value + "-3"})
    assert loader.verify(NAME, canary.value + "-1") == "previous"
    assert loader.verify(NAME, canary.value + "-2") == "previous"
    clock.now += 301.0  # -1 was replaced 601 s ago, -2 only 301 s ago
    assert loader.verify(NAME, canary.value + "-1") is None
    assert loader.verify(NAME, canary.value + "-2") == "previous"


def test_grace_zero_accepts_only_current(volume, canary):
    volume.write({NAME: canary.value + "-old"})
    loader = _loader(volume, FakeClock(), grace=0)
    loader.get(NAME)
    volume.write({NAME: canary.value + "-new"})
    assert loader.verify(NAME, canary.value + "-old") is None


def test_a_rotation_the_process_did_not_see_is_not_accepted(volume, canary):
    volume.write({NAME: canary.value + "-old"})
    loader = _loader(volume, FakeClock())
    volume.write({NAME: canary.value + "-new"})  # before the first read
    assert loader.verify(NAME, canary.value + "-old") is None


def test_explicit_previous_from_env_file_and_directory(tmp_path, volume, canary):
    clock = FakeClock()
    volume.write({NAME: canary.value + "-new", f"{NAME}_PREVIOUS": canary.value + "-dir"})
    loader = _loader(volume, clock)
    assert loader.verify(NAME, canary.value + "-dir") == "previous"

    env_loader = Loader(env={NAME: "current-value", f"{NAME}_PREVIOUS": canary.value})
    assert env_loader.verify(NAME, canary.value) == "previous"

    previous_file = tmp_path / "previous"
    previous_file.write_text(canary.value + "-file\n")
    previous_file.chmod(0o600)
    file_loader = Loader(
        env={NAME: "current-value", f"{NAME}_PREVIOUS_FILE": str(previous_file)}
    )
    assert file_loader.verify(NAME, canary.value + "-file") == "previous"
    clock.now += 10_000.0  # explicit previous values do not expire
    assert loader.verify(NAME, canary.value + "-dir") == "previous"


def test_previous_alone_is_enough(canary):
    loader = Loader(env={f"{NAME}_PREVIOUS": canary.value})
    assert loader.verify(NAME, canary.value) == "previous"


def test_missing_secret_raises(canary):
    with pytest.raises(MissingSecretError) as info:
        Loader(env={}).verify(NAME, canary.value)
    assert NAME in str(info.value)
    canary.assert_absent(str(info.value), repr(info.value))


@pytest.mark.parametrize(
    "value",
    ["pässwörd-ünïcødé", "密钥-秘密-🔑", "ключ-Schlüssel-κλειδί"],
)
def test_non_ascii_values(volume, canary, value):
    clock = FakeClock()
    volume.write({NAME: value})
    loader = _loader(volume, clock)
    assert loader.verify(NAME, value) == "current"
    assert loader.verify(NAME, value.encode("utf-8")) == "current"
    assert loader.verify(NAME, value.encode("utf-8")[:-1]) is None
    volume.write({NAME: canary.value + value})
    assert loader.verify(NAME, value) == "previous"
    assert loader.verify(NAME, canary.value + value) == "current"
    # Lone surrogates cannot be UTF-8: no match, and no UnicodeEncodeError quoting them.
    assert loader.verify(NAME, value + "\udcff") is None


def test_every_accepted_value_is_compared(volume, canary, monkeypatch):
    """No short-circuit: the current value matching first still compares the others."""
    import agentos_secrets.grace as grace

    volume.write({NAME: canary.value + "-1", f"{NAME}_PREVIOUS": canary.value + "-p"})
    loader = _loader(volume, FakeClock())
    loader.get(NAME)
    volume.write({NAME: canary.value + "-2", f"{NAME}_PREVIOUS": canary.value + "-p"})
    loader.get(NAME)
    calls: list[int] = []
    inside = [False]
    real_compare, real_match = hmac.compare_digest, grace.match

    def counting(a, b):
        if inside[0]:  # the Loader's own cache checks compare too: count verify's only
            calls.append(len(a))
        return real_compare(a, b)

    def tracked_match(presented, candidates):
        inside[0] = True
        try:
            return real_match(presented, candidates)
        finally:
            inside[0] = False

    monkeypatch.setattr(hmac, "compare_digest", counting)
    monkeypatch.setattr(grace, "match", tracked_match)
    monkeypatch.setattr("agentos_secrets.loader.match", tracked_match)
    assert loader.verify(NAME, canary.value + "-2") == "current"
    assert len(calls) == 3  # current, replaced -1, explicit previous
    assert set(calls) == {32}, "digests are compared, so lengths never differ"
    calls.clear()
    assert loader.verify(NAME, "wrong") is None
    assert len(calls) == 3
    assert real_match(b"x", []) is None


def test_wrong_presented_type_names_the_type_only(canary):
    loader = Loader(env={NAME: canary.value})

    class Leaky:
        def __repr__(self) -> str:
            return canary.value

    with pytest.raises(TypeError) as info:
        loader.verify(NAME, Leaky())  # type: ignore[arg-type]
    assert "Leaky" in str(info.value)
    canary.assert_absent(str(info.value), repr(info.value))


def test_nothing_leaks_from_verify(volume, canary, caplog):
    clock = FakeClock()
    volume.write({NAME: canary.value + "-a"})
    loader = _loader(volume, clock)
    with caplog.at_level(logging.DEBUG, logger="agentos_secrets"):
        results = [loader.verify(NAME, canary.value + "-a")]
        volume.write({NAME: canary.value + "-b"})
        results.append(loader.verify(NAME, canary.value + "-a"))
        results.append(loader.verify(NAME, canary.value))
    text = caplog.text + repr(results) + str(loader.explain(NAME)) + repr(loader._grace.__dict__)
    canary.assert_absent(text)


def test_grace_window_keeps_at_most_eight_values_and_rejects_negative(volume, canary):
    with pytest.raises(ValueError, match="grace"):
        Loader(env={}, grace=-1)
    clock = FakeClock()
    volume.write({NAME: canary.value + "-0"})
    loader = _loader(volume, clock)
    loader.get(NAME)
    for i in range(1, 11):
        volume.write({NAME: f"{canary.value}-{i}"})
        loader.get(NAME)
    accepted = [i for i in range(10) if loader.verify(NAME, f"{canary.value}-{i}")]
    assert accepted == list(range(2, 10))  # the eight newest replaced values
    assert loader.verify(NAME, f"{canary.value}-10") == "current"


def test_explain_mentions_the_explicit_previous(canary):
    loader = Loader(env={NAME: "current-value", f"{NAME}_PREVIOUS": canary.value})
    text = str(loader.explain(NAME))
    assert f"verify() also accepts {NAME}_PREVIOUS from environment variable" in text
    canary.assert_absent(text)
