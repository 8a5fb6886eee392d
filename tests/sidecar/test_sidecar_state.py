"""The state file: atomic, fingerprint-only, strict, and never written over another's file.

Each way bad state used to be trusted or clobbered has its instance here: a FIFO, a
device, a huge file, garbage, wrong types, deep nesting, another program's JSON, a
directory, a symlink. Plus the previous release's format (migrated) and a fuzz test of
the parser.
"""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_secrets.sidecar.state import (
    KIND,
    MAX_STATE_BYTES,
    State,
    StateError,
    StateFile,
    StateNotOurs,
    StateUnusable,
    parse_state,
)

FP = "fp1:0123456789abcdef"
FP2 = "fp1:fedcba9876543210"


def _ours(**override) -> str:
    doc = {"kind": KIND, "version": 2, "fingerprint": FP, "applied_at": 1.5,
           "keys": {"/etc/agentos/secrets": {"AGENTOS_SERVICE_TOKEN": FP2}}}
    doc.update(override)
    return json.dumps(doc)


def _refuses_to_write(store: StateFile) -> None:
    with pytest.raises(StateNotOurs):
        store.save(State(FP, 1.0))


# -- round trip ------------------------------------------------------------------------------


def test_missing_state_is_none(tmp_path):
    assert StateFile(str(tmp_path / "state.json")).load() is None


def test_round_trip_with_keys_mode_0600_and_no_temporary_left(tmp_path):
    store = StateFile(str(tmp_path / "state.json"))
    store.save(State(FP, 12.5))
    keys = {"/vol": {"A": FP, "B": FP2}}
    store.save(State(FP2, 13.0, keys))
    assert store.load() == State(FP2, 13.0, keys)
    assert os.listdir(tmp_path) == ["state.json"]
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600
    assert json.loads((tmp_path / "state.json").read_text())["kind"] == KIND


def test_only_fingerprints_are_stored(tmp_path, canary):
    store = StateFile(str(tmp_path / "state.json"))
    with pytest.raises(ValueError):
        store.save(State(canary.value, 0.0))
    with pytest.raises(ValueError):
        store.save(State(FP, 0.0, {"/vol": {"KEY": canary.value}}))
    assert not (tmp_path / "state.json").exists()
    store.save(State(FP, 1.0))
    assert json.loads((tmp_path / "state.json").read_text())["fingerprint"] == FP


def test_unwritable_directory_is_a_state_error(tmp_path):
    store = StateFile(str(tmp_path / "missing-dir" / "state.json"))
    with pytest.raises(StateError) as err:
        store.save(State(FP, 1.0))
    assert "missing-dir" in str(err.value)


# -- the previous release's format -------------------------------------------------------------


def test_the_previous_format_is_migrated(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "fingerprint": FP, "applied_at": 7.0}))
    store = StateFile(str(path))
    assert store.load() == State(FP, 7.0, {}, legacy=True)
    store.save(State(FP, 8.0, {"/vol": {"A": FP2}}))  # it is ours: the save replaces it
    assert json.loads(path.read_text())["version"] == 2


@pytest.mark.parametrize("doc", [
    {"version": 1, "fingerprint": FP},  # the old writer always wrote applied_at
    {"version": 1, "fingerprint": FP, "applied_at": 7.0, "extra": 1},
    {"version": 2, "fingerprint": FP, "applied_at": 7.0},
    {"version": True, "fingerprint": FP, "applied_at": 7.0},
    {"version": 1, "fingerprint": "sha256:abc", "applied_at": 7.0},
    {"version": 1, "fingerprint": FP, "applied_at": "7"},
])
def test_only_the_exact_previous_format_is_taken_for_ours(tmp_path, doc):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs):
        store.load()
    _refuses_to_write(store)
    assert json.loads(path.read_text()) == doc


# -- ours, but invalid: a new baseline overwrites it -----------------------------------------


@pytest.mark.parametrize("content", [
    _ours(fingerprint=3),
    _ours(fingerprint="sha256:abc"),
    _ours(version=3),
    _ours(version="2"),
    _ours(version=True),
    _ours(applied_at="yesterday"),
    _ours(applied_at=-1),
    _ours(applied_at=True),
    _ours(applied_at=10**400),
    _ours(keys=[]),
    _ours(keys={"relative/path": {}}),
    _ours(keys={"/vol": {"A": "not a fingerprint"}}),
    _ours(keys={"/vol": {"": FP}}),
    _ours(keys={"/vol": ["A"]}),
    _ours(keys={"/vol": {f"K{i}": FP for i in range(1025)}}),
    _ours(extra=1),
    _ours(keys={"/vol": [[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]}),
    f'{{"kind": "{KIND}", "version": 2, "fingerprint": "{FP}", "applied_at": 1e999,'
    ' "keys": {}}',
])
def test_our_own_invalid_state_is_unusable_and_may_be_overwritten(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    store = StateFile(str(path))
    with pytest.raises(StateUnusable) as err:
        store.load()
    assert str(path) in str(err.value)
    store.save(State(FP, 1.0))
    assert store.load() == State(FP, 1.0)


def test_a_duplicate_field_is_refused(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(_ours()[:-1] + f', "fingerprint": "{FP2}"}}')
    with pytest.raises(StateError):
        StateFile(str(path)).load()


# -- not ours: never overwritten --------------------------------------------------------------


@pytest.mark.parametrize("content", [
    "", "garbage", "{", "[]", "null", '"text"', "3",
    '{"fingerprint": 3}', '{"fingerprint": "sha256:abc"}',
    '{"kind": "someone-else", "version": 2}',
    '{"apiVersion": "v1", "kind": "ConfigMap"}',
    "[" * 200_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    f'{{"version": 1, "fingerprint": "{FP}", "applied_at": {"9" * 5000}}}',
    f'{{"version": 1, "fingerprint": "{FP}", "applied_at": {"9" * 400}}}',
])
def test_other_content_is_not_ours_and_is_left_alone(tmp_path, content, canary):
    path = tmp_path / "state.json"
    path.write_text(content)
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs) as err:
        store.load()
    assert "never overwritten" in str(err.value)
    assert store.not_ours is not None
    _refuses_to_write(store)
    assert path.read_text() == content


def test_a_huge_file_is_not_read_and_not_ours(tmp_path):
    path = tmp_path / "state.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_STATE_BYTES * 64)  # sparse: 64 MiB that cost nothing
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs) as err:
        store.load()
    assert "file-too-large" in str(err.value)
    _refuses_to_write(store)
    assert path.stat().st_size == MAX_STATE_BYTES * 64


def test_our_marker_in_a_file_over_the_cap_is_not_ours(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(_ours()[:-1] + ', "pad": "' + "x" * MAX_STATE_BYTES + '"}')
    with pytest.raises(StateNotOurs):
        StateFile(str(path)).load()


def test_a_fifo_does_not_block_and_is_not_ours(tmp_path):
    path = tmp_path / "state.json"
    os.mkfifo(path)
    store = StateFile(str(path))
    result: list[BaseException | None] = []

    def load() -> None:
        try:
            store.load()
        except BaseException as exc:  # handed to the test thread
            result.append(exc)
        else:
            result.append(None)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(30)  # a generous bound: a blocking open would never return
    assert result and isinstance(result[0], StateNotOurs)
    _refuses_to_write(store)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_device_is_not_read_and_not_ours():
    store = StateFile("/dev/zero")
    with pytest.raises(StateNotOurs) as err:
        store.load()
    assert "not a regular file" in str(err.value)
    _refuses_to_write(store)


def test_a_device_node_at_the_path_is_not_ours(tmp_path):
    path = tmp_path / "state.json"
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs):
        store.load()
    _refuses_to_write(store)
    assert stat.S_ISCHR(os.lstat(path).st_mode)


def test_a_directory_at_the_path_is_not_ours(tmp_path):
    path = tmp_path / "state.json"
    path.mkdir()
    (path / "inside").write_text("keep")
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs):
        store.load()
    _refuses_to_write(store)
    assert (path / "inside").read_text() == "keep"


def test_a_directory_appearing_after_start_is_not_replaced(tmp_path):
    path = tmp_path / "state.json"
    store = StateFile(str(path))
    assert store.load() is None
    path.mkdir()
    _refuses_to_write(store)
    assert path.is_dir()


@pytest.mark.parametrize("target_content", [None, "someone's data", _ours()])
def test_a_symlink_is_not_ours_and_neither_it_nor_its_target_is_touched(
    tmp_path, target_content
):
    target = tmp_path / "elsewhere.json"
    if target_content is not None:
        target.write_text(target_content)
    path = tmp_path / "state.json"
    path.symlink_to(target)
    store = StateFile(str(path))
    with pytest.raises(StateNotOurs) as err:
        store.load()
    assert "symlink" in str(err.value)
    _refuses_to_write(store)
    assert path.is_symlink() and os.readlink(path) == str(target)
    if target_content is None:
        assert not target.exists()
    else:
        assert target.read_text() == target_content


def test_a_foreign_file_replacing_ours_after_start_is_not_overwritten(tmp_path):
    path = tmp_path / "state.json"
    store = StateFile(str(path))
    store.save(State(FP, 1.0))
    os.unlink(path)
    path.write_text("someone else's")
    _refuses_to_write(store)
    assert path.read_text() == "someone else's"
    _refuses_to_write(store)  # and from now on, without looking again


def test_ours_rewritten_by_another_sidecar_is_still_ours(tmp_path):
    path = tmp_path / "state.json"
    first, second = StateFile(str(path)), StateFile(str(path))
    first.save(State(FP, 1.0))
    second.save(State(FP2, 2.0))  # a new inode, but our content
    first.save(State(FP, 3.0))
    assert second.load() == State(FP, 3.0)


def test_a_relative_path_is_never_shown(tmp_path, monkeypatch, canary):
    monkeypatch.chdir(tmp_path)
    (tmp_path / canary.value).write_text("garbage")
    store = StateFile(canary.value)  # a secret typed into --state-file
    with pytest.raises(StateNotOurs) as err:
        store.load()
    canary.assert_absent(str(err.value), store.not_ours)
    assert "not an absolute path" in str(err.value)


# -- the parser, fuzzed -----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=30) | st.integers(min_value=10**300, max_value=10**400),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


def _check(raw: bytes) -> None:
    try:
        state = parse_state(raw)
    except (StateUnusable, StateNotOurs):
        return
    # Anything accepted is well-formed: it renders and parses back to itself.
    assert state.fingerprint.startswith("fp1:")
    assert parse_state(json.dumps({
        "kind": KIND, "version": 2, "fingerprint": state.fingerprint,
        "applied_at": state.applied_at, "keys": state.keys,
    }).encode()).fingerprint == state.fingerprint


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_bytes_never_crash_the_parser(raw):
    _check(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from([KIND, "other"]) | _json,
            "version": st.sampled_from([1, 2]) | _json,
            "fingerprint": st.sampled_from([FP, FP2]) | _json,
            "applied_at": st.floats() | st.integers() | _json,
            "keys": st.dictionaries(
                st.sampled_from(["/vol", "vol", "/x"]) | st.text(max_size=5),
                st.dictionaries(st.text(max_size=5), st.sampled_from([FP]) | _json,
                                max_size=3) | _json,
                max_size=3,
            ) | _json,
            "extra": _json,
        },
    )
)
def test_fuzz_documents_near_ours_never_crash_the_parser(doc):
    _check(json.dumps(doc).encode())
