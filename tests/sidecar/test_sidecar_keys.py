"""Per-key tracking: mounted and applied fingerprints, derived only on change, bounded."""

from __future__ import annotations

import json
import os

import pytest
from test_sidecar_loop import Rig

from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.sidecar.keys import KeyTracker
from agentos_secrets.sidecar.state import KIND, StateFile
from agentos_secrets.sidecar.status import document
from agentos_secrets.testing import AtomicWriter
from agentos_secrets.watch import Hint

FP = "fp1:0123456789abcdef"


@pytest.fixture
def rig(tmp_path) -> Rig:
    return Rig(tmp_path)


class Counting:
    """fingerprint_bytes, counting the derivations (the slow part)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes) -> str:
        self.calls += 1
        return fingerprint_bytes(data)


def _by_name(tracker: KeyTracker) -> dict[str, object]:
    keys, _ = tracker.snapshot()
    return {k.name: k for k in keys}


def test_mounted_is_the_fingerprint_the_loader_would_give(tmp_path):
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"TOKEN": "  value-1\n", "OTHER": "x"})
    tracker = KeyTracker([writer.target_dir])
    tracker.refresh()
    tracker.derive()
    keys = _by_name(tracker)
    assert list(keys) == ["OTHER", "TOKEN"]  # dot-entries (..data, generations) are not keys
    assert keys["TOKEN"].mounted == fingerprint_bytes(b"value-1")  # trimmed like the Loader
    from agentos_secrets import Loader

    secret = Loader(env={}, secret_dirs=[writer.target_dir]).get("TOKEN")
    assert keys["TOKEN"].mounted == secret.fingerprint()
    assert keys["TOKEN"].applied is None and keys["TOKEN"].reason is None


def test_derived_only_when_a_keys_content_changes(tmp_path):
    writer = AtomicWriter(tmp_path / "vol")
    payload = {f"KEY_{i:02d}": f"value-{i}" for i in range(20)}
    writer.write(payload)
    counting = Counting()
    tracker = KeyTracker([writer.target_dir], fingerprint=counting)
    tracker.refresh()
    assert tracker.derive() == 20
    for _ in range(3):  # re-reads, touches and identical rewrites derive nothing
        tracker.refresh()
        assert tracker.derive() == 0
    writer.write({**payload, "KEY_07": "rotated"})
    tracker.refresh()
    assert tracker.derive() == 1
    assert counting.calls == 21
    assert _by_name(tracker)["KEY_07"].mounted == fingerprint_bytes(b"rotated")


def test_unreadable_keys_have_a_reason_code_and_no_fingerprint(tmp_path, canary):
    directory = tmp_path / "plain"
    directory.mkdir()
    (directory / "GOOD").write_text(canary.value)
    (directory / "EMPTY").write_text("  \n")
    (directory / "BINARY").write_bytes(b"\xff\xfe")
    (directory / "OPEN").write_text("x")
    os.chmod(directory / "OPEN", 0o666)
    os.mkfifo(directory / "FIFO")
    (directory / "dangling").symlink_to(directory / "gone")
    (directory / "nested").mkdir()  # an item directory is not a key the Loader reads
    (directory / ".hidden").write_text("x")
    tracker = KeyTracker([str(directory)])
    tracker.refresh()
    tracker.derive()
    keys = _by_name(tracker)
    assert {n: k.reason for n, k in keys.items()} == {
        "BINARY": "bad-encoding", "EMPTY": "bad-value", "FIFO": "file-not-regular",
        "GOOD": None, "OPEN": "file-insecure", "dangling": "file-not-found",
    }
    assert all(k.mounted is None for n, k in keys.items() if n != "GOOD")
    canary.assert_absent(repr(keys))


def test_a_watched_file_is_one_key_and_a_missing_one_has_a_reason(tmp_path):
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"TOKEN": "t", "OTHER": "o"})
    tracker = KeyTracker([os.path.join(writer.target_dir, "TOKEN"), str(tmp_path / "gone" / "K"),
                          str(tmp_path / "K2")])
    tracker.refresh()
    tracker.derive()
    keys, truncated = tracker.snapshot()
    assert [(k.watch, k.name, k.reason) for k in keys] == [
        (0, "TOKEN", None), (2, "K2", "file-not-found")
    ]
    assert not truncated


def test_the_number_of_keys_is_capped_over_all_watched_paths(tmp_path):
    first, second = AtomicWriter(tmp_path / "a"), AtomicWriter(tmp_path / "b")
    first.write({f"A{i}": "x" for i in range(6)})
    second.write({f"B{i}": "y" for i in range(6)})
    counting = Counting()
    tracker = KeyTracker([first.target_dir, second.target_dir], max_keys=8,
                         fingerprint=counting)
    tracker.refresh()
    tracker.derive()
    keys, truncated = tracker.snapshot()
    assert truncated and len(keys) == 8
    assert [k.name for k in keys] == [f"A{i}" for i in range(6)] + ["B0", "B1"]
    tracker.refresh([second.target_dir])  # a partial refresh keeps the cap
    tracker.derive()
    assert len(tracker.snapshot()[0]) == 8
    assert counting.calls == 2  # the same two values: "x" and "y"


def test_applied_follows_mark_applied_and_restore(tmp_path):
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"TOKEN": "v0"})
    tracker = KeyTracker([writer.target_dir])
    tracker.refresh()
    tracker.mark_applied()  # before derive: filled in by derive
    tracker.derive()
    assert _by_name(tracker)["TOKEN"].applied == fingerprint_bytes(b"v0")
    assert tracker.applied_for_state() == {writer.target_dir: {"TOKEN": fingerprint_bytes(b"v0")}}
    writer.write({"TOKEN": "v1"})
    tracker.refresh()
    tracker.derive()
    token = _by_name(tracker)["TOKEN"]
    assert token.mounted == fingerprint_bytes(b"v1") and token.applied == fingerprint_bytes(b"v0")
    tracker.restore({writer.target_dir: {"TOKEN": FP}, "/elsewhere": {"X": FP}})
    assert _by_name(tracker)["TOKEN"].applied == FP
    assert tracker.applied_for_state() == {writer.target_dir: {"TOKEN": FP}}


# -- through the loop --------------------------------------------------------------------------


def _status(rig: Rig) -> dict:
    return document(rig.engine, rig.clock.t, pod="pod-1")


def _key(status: dict, name: str = "AGENTOS_SERVICE_TOKEN") -> dict:
    return next(k for k in status["keys"] if k["name"] == name)


def test_mounted_changes_first_then_applied_after_the_action(rig):
    rig.start()
    # start-up does not wait for the per-key derivations: the first turn does them
    assert _key(_status(rig))["reason"] == "deriving" and _key(_status(rig))["mounted"] is None
    assert StateFile(rig.state_path).load().keys == {}  # the baseline, saved at once
    rig.engine.step(rig.clock.t)
    assert StateFile(rig.state_path).load().keys[rig.writer.target_dir]
    v0 = fingerprint_bytes(b"v0")
    assert _key(_status(rig)) == {"name": "AGENTOS_SERVICE_TOKEN", "watch": 0, "mounted": v0,
                                  "applied": v0, "pending": False, "reason": None}
    rig.rotate("v1")
    rig.engine.step(rig.clock.t)  # seen, not yet acted on (debounce 1 s)
    status = _status(rig)
    assert _key(status)["mounted"] == fingerprint_bytes(b"v1")
    assert _key(status)["applied"] == v0
    assert _key(status)["pending"] and status["pending"]
    assert not _key(status, "OTHER")["pending"]  # unchanged keys are not pending
    assert rig.metrics.value("key_pending", {"watch": "0", "key": "AGENTOS_SERVICE_TOKEN"}) == 1
    assert rig.metrics.value("key_pending", {"watch": "0", "key": "OTHER"}) == 0
    rig.run_for(5)
    status = _status(rig)
    assert _key(status)["applied"] == fingerprint_bytes(b"v1")
    assert not status["pending"] and not _key(status)["pending"]
    assert status["last_action"]["result"] == "ok" and status["last_action"]["attempts"] == 1
    assert status["last_action"]["at"].endswith("Z") and status["last_action"]["error"] is None
    assert rig.metrics.value("key_pending", {"watch": "0", "key": "AGENTOS_SERVICE_TOKEN"}) == 0


def test_a_failing_action_keeps_applied_old_and_pending(rig):
    from agentos_secrets.sidecar.actions.base import ActionError

    rig.start()
    rig.action.failures = [ActionError("down", retryable=True) for _ in range(3)]
    rig.rotate("v1")
    rig.run_for(4)
    status = _status(rig)
    assert _key(status)["applied"] == fingerprint_bytes(b"v0")
    assert _key(status)["pending"] and status["pending"]
    assert status["last_action"]["result"] == "failed"
    assert status["last_action"]["error"] == "down"
    assert status["last_action"]["attempts"] >= 2
    rig.run_for(100)
    status = _status(rig)
    assert _key(status)["applied"] == fingerprint_bytes(b"v1")
    assert status["last_action"] == {"result": "ok", "at": status["last_action"]["at"],
                                     "attempts": 4, "error": None}


def test_a_key_removed_disappears_from_status_and_metrics(rig):
    rig.start()
    rig.writer.write({"AGENTOS_SERVICE_TOKEN": "v0"})  # OTHER removed
    rig.engine.hint(Hint(rig.writer.target_dir, rig.writer.target_dir))
    rig.run_for(5)
    assert [k["name"] for k in _status(rig)["keys"]] == ["AGENTOS_SERVICE_TOKEN"]
    assert rig.metrics.value("key_pending", {"watch": "0", "key": "OTHER"}) is None


def test_a_restart_keeps_applied_from_the_state_file(tmp_path):
    from agentos_secrets.sidecar.actions.base import ActionError

    rig = Rig(tmp_path)
    rig.start()
    rig.action.failures = [ActionError("down", retryable=False) for _ in range(100)]
    rig.rotate("v1")
    rig.run_for(30)
    assert _key(_status(rig))["applied"] == fingerprint_bytes(b"v0")
    rig.engine = rig.make()  # restarted while the change is still not applied
    rig.start()
    rig.engine.step(rig.clock.t)
    status = _status(rig)
    assert _key(status)["applied"] == fingerprint_bytes(b"v0")
    assert _key(status)["mounted"] == fingerprint_bytes(b"v1")
    assert _key(status)["pending"]
    assert _key(status, "OTHER")["applied"] == fingerprint_bytes(b"x")
    assert not _key(status, "OTHER")["pending"]


def test_the_previous_state_format_is_migrated_by_the_loop(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    combined = rig.engine.applied_fp
    with open(rig.state_path, "w") as handle:  # what the previous release wrote
        json.dump({"version": 1, "fingerprint": combined, "applied_at": 5.0}, handle)
    rig.engine = rig.make()
    rig.start()
    rig.run_for(30)
    assert rig.action.calls == []  # same content: still no action
    saved = StateFile(rig.state_path).load()
    assert not saved.legacy and saved.keys[rig.writer.target_dir]["AGENTOS_SERVICE_TOKEN"] \
        == fingerprint_bytes(b"v0")
    with open(rig.state_path) as handle:
        assert json.load(handle)["kind"] == KIND
    # a version 1 state that differs: one action; applied unknown until it succeeds
    with open(rig.state_path, "w") as handle:
        json.dump({"version": 1, "fingerprint": FP, "applied_at": 5.0}, handle)
    rig.engine = rig.make()
    rig.start()
    assert _key(_status(rig))["applied"] is None and _status(rig)["pending"]
    rig.run_for(30)
    assert len(rig.action.calls) == 1
    assert _key(_status(rig))["applied"] == fingerprint_bytes(b"v0")


def test_action_none_applies_at_once_without_acting(tmp_path):
    from agentos_secrets.sidecar.actions.none import NoAction

    rig = Rig(tmp_path)
    rig.action = NoAction()  # type: ignore[assignment]
    rig.engine = rig.make()
    rig.start()
    rig.rotate("v1")
    rig.engine.step(rig.clock.t)  # no debounce, no breaker: applied when seen
    status = _status(rig)
    assert status["action"] == "none"
    assert _key(status)["mounted"] == _key(status)["applied"] == fingerprint_bytes(b"v1")
    assert not status["pending"]
    assert status["last_action"] == {"result": None, "at": None, "attempts": 0, "error": None}
    for i in range(2, 6):  # a storm: every change is taken up at once
        rig.rotate(f"v{i}")
        rig.engine.step(rig.clock.t)
        assert _key(_status(rig))["applied"] == fingerprint_bytes(f"v{i}".encode())
    assert rig.metrics.value("actions_total", {"kind": "none", "result": "success"}) is None
    assert StateFile(rig.state_path).load().keys[rig.writer.target_dir][
        "AGENTOS_SERVICE_TOKEN"] == fingerprint_bytes(b"v5")


def test_status_holds_no_value_and_no_path(rig, canary):
    rig.start()
    rig.rotate(canary.value)
    rig.run_for(5)
    body = json.dumps(_status(rig))
    canary.assert_absent(body)
    assert rig.writer.target_dir not in body
    metrics, _ = rig.metrics.render()
    canary.assert_absent(metrics)


def test_the_state_file_keeps_per_key_fingerprints_only(rig, canary):
    rig.start()
    rig.rotate(canary.value)
    rig.run_for(5)
    with open(rig.state_path, "rb") as handle:
        raw = handle.read()
    canary.assert_absent(raw)
    keys = StateFile(rig.state_path).load().keys
    assert keys == {rig.writer.target_dir: {
        "AGENTOS_SERVICE_TOKEN": fingerprint_bytes(canary.value_bytes),
        "OTHER": fingerprint_bytes(b"x"),
    }}


def test_times_are_rfc3339_utc():
    from datetime import UTC, datetime

    from agentos_secrets.sidecar.status import _rfc3339

    for wall in (0.0, 1.5, 1796145892.545039, 1796145892.9999999):
        text = _rfc3339(wall)
        assert text.endswith("Z")
        parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs(parsed.timestamp() - wall) < 1e-6
    assert _rfc3339(None) is None


def test_background_derivation_then_wait_and_close(tmp_path):
    import threading

    writer = AtomicWriter(tmp_path / "vol")
    writer.write({f"K{i}": f"v{i}" for i in range(5)})
    derived = threading.Event()
    tracker = KeyTracker([writer.target_dir], on_derived=derived.set)
    tracker.refresh()
    assert not tracker.idle()
    tracker.request()
    assert tracker.wait(30) and tracker.idle() and derived.is_set()
    assert all(k.mounted == fingerprint_bytes(f"v{k.name[1]}".encode())
               for k in tracker.snapshot()[0])
    threads = [t for t in threading.enumerate() if t.name == "sidecar-keys"]
    tracker.close()
    assert threads and not any(t.is_alive() for t in threads)


def test_the_sidecar_records_per_key_state_off_the_loop_thread(tmp_path):
    rig = Rig(tmp_path, debounce=0.0, max_wait=0.0, min_interval=0.0, background=True,
              uses_fingerprint=True)
    rig.start()
    rig.engine.step(rig.clock.t)
    rig.rotate("v1")
    rig.run_for(0.1)
    rig.engine.flush()
    keys = StateFile(rig.state_path).load().keys[rig.writer.target_dir]
    assert keys == {"AGENTOS_SERVICE_TOKEN": fingerprint_bytes(b"v1"),
                    "OTHER": fingerprint_bytes(b"x")}
    assert _key(_status(rig))["applied"] == fingerprint_bytes(b"v1")
    rig.engine.close()


def test_odd_file_names_are_left_out_of_status_and_metrics(tmp_path):
    rig = Rig(tmp_path)
    directory = os.fsencode(rig.writer.target_dir)
    generation = os.fsencode(rig.writer.current_generation())
    with open(os.path.join(directory, generation, b"bad-\xff-name"), "wb") as handle:
        handle.write(b"v")
    os.symlink(b"..data/bad-\xff-name", os.path.join(directory, b"bad-\xff-name"))
    long_name = "L" * 254  # one more than a Kubernetes key may have
    with open(os.path.join(rig.writer.target_dir, long_name), "w") as handle:
        handle.write("v")
    rig.start()
    rig.run_for(1)
    status = _status(rig)
    assert status["truncated"] is True
    assert sorted(k["name"] for k in status["keys"]) == ["AGENTOS_SERVICE_TOKEN", "OTHER"]
    json.dumps(status).encode("utf-8")
    body, _ = rig.metrics.render()  # renders: no label it cannot encode
    assert b"key_pending" in body and long_name.encode() not in body


def test_a_mounted_keys_raw_hash_is_not_in_its_repr():
    import hashlib

    from agentos_secrets.sidecar.keys import _Mounted

    sha = hashlib.sha256(b"short-token").digest()
    text = repr(_Mounted(sha, None))
    assert sha.hex() not in text and repr(sha) not in text
