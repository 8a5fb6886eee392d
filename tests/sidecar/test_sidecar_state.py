"""The state file: atomic, fingerprint-only, clear errors naming the path."""

from __future__ import annotations

import json
import os

import pytest

from agentos_secrets.sidecar.state import State, StateError, StateFile

FP = "fp1:0123456789abcdef"


def test_missing_state_is_none(tmp_path):
    assert StateFile(str(tmp_path / "state.json")).load() is None


def test_round_trip_and_no_temporary_left(tmp_path):
    store = StateFile(str(tmp_path / "state.json"))
    store.save(State(FP, 12.5))
    store.save(State("fp1:fedcba9876543210", 13.0))
    assert store.load() == State("fp1:fedcba9876543210", 13.0)
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize(
    "content", ["", "{", '{"fingerprint": 3}', '{"fingerprint": "sha256:abc"}', "[]"]
)
def test_corrupt_state_is_an_error_naming_the_path(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError) as err:
        StateFile(str(path)).load()
    assert str(path) in str(err.value)


def test_only_fingerprints_are_stored(tmp_path, canary):
    store = StateFile(str(tmp_path / "state.json"))
    with pytest.raises(ValueError):
        store.save(State(canary.value, 0.0))
    assert not (tmp_path / "state.json").exists()
    store.save(State(FP, 1.0))
    assert json.loads((tmp_path / "state.json").read_text())["fingerprint"] == FP


def test_unwritable_directory_is_a_state_error(tmp_path):
    store = StateFile(str(tmp_path / "missing-dir" / "state.json"))
    with pytest.raises(StateError) as err:
        store.save(State(FP, 1.0))
    assert "missing-dir" in str(err.value)
