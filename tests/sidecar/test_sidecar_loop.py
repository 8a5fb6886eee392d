"""The engine with a fake clock: one action per real change, never lost, newest wins.

The watched volume is real (written by the kubelet AtomicWriter fake) and so are the
digests and fingerprints; only time and the action are fakes. Hints are given by hand,
as the watcher would.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest

from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.coalesce import Coalescer, StormBreaker
from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.sidecar.loop import Engine
from agentos_secrets.sidecar.metrics import Metrics
from agentos_secrets.sidecar.retry import Backoff
from agentos_secrets.sidecar.state import State, StateFile
from agentos_secrets.testing import AtomicWriter
from agentos_secrets.watch import Hint


class FakeAction:
    kind = "fake"

    def __init__(self, uses_fingerprint: bool = False) -> None:
        self.uses_fingerprint = uses_fingerprint
        self.calls: list[str] = []
        self.failures: list[ActionError | Exception] = []
        self.on_apply: Callable[[], None] | None = None
        self.ready_reason: str | None = None

    def ready(self) -> str | None:
        return self.ready_reason

    def apply(self, fingerprint: str) -> None:
        self.calls.append(fingerprint)
        if self.on_apply:
            self.on_apply()
        if self.failures:
            raise self.failures.pop(0)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, tmp_path, *, debounce=1.0, max_wait=10.0, min_interval=10.0,
                 max_per_hour=12, resync=60.0, state=True, uses_fingerprint=False,
                 background=False) -> None:
        self.writer = AtomicWriter(tmp_path / "vol")
        self.writer.write({"AGENTOS_SERVICE_TOKEN": "v0", "OTHER": "x"})
        self.clock = Clock()
        self.action = FakeAction(uses_fingerprint)
        self.state_path = str(tmp_path / "state.json")
        self.metrics = Metrics("fake")
        self.make = lambda: Engine(
            detector=Detector([self.writer.target_dir]),
            action=self.action,
            metrics=self.metrics,
            coalescer=Coalescer(debounce, max_wait),
            breaker=StormBreaker(min_interval, max_per_hour),
            backoff=Backoff(1.0, 60.0, rng=lambda: 0.0),
            resync=resync,
            state_file=StateFile(self.state_path) if state else None,
            clock=self.clock,
            wall=self.clock,
            record_in_background=background,
        )
        self.engine = self.make()

    def start(self) -> None:
        self.engine.start(self.clock.t)

    def rotate(self, value: str, **extra: str) -> None:
        self.writer.write({"AGENTOS_SERVICE_TOKEN": value, "OTHER": "x", **extra})
        self.engine.hint(Hint(self.writer.target_dir, self.writer.target_dir))

    def run_for(self, seconds: float) -> None:
        """Advance the fake clock to each deadline the engine asks for."""
        end = self.clock.t + seconds
        deadline = self.engine.step(self.clock.t)
        while deadline <= end:
            self.clock.t = max(self.clock.t, deadline)
            deadline = self.engine.step(self.clock.t)
        self.clock.t = end
        self.engine.step(self.clock.t)

    def actions(self, result: str = "success") -> float:
        return self.metrics.value("actions_total", {"kind": "fake", "result": result}) or 0


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_no_state_records_a_baseline_and_does_nothing(rig):
    rig.start()
    rig.run_for(120)
    assert rig.action.calls == []
    assert StateFile(rig.state_path).load().fingerprint == rig.engine.applied_fp
    ok, _ = rig.engine.readiness(rig.clock.t)
    assert ok


def test_one_action_per_real_change_after_debounce(rig):
    rig.start()
    rig.rotate("v1")
    rig.engine.step(rig.clock.t)
    assert rig.action.calls == []  # quiet period first
    assert rig.metrics.value("pending_change") == 1
    rig.run_for(1.0)
    assert len(rig.action.calls) == 1
    assert rig.metrics.value("pending_change") == 0
    saved = StateFile(rig.state_path).load()
    assert saved.fingerprint == rig.engine.applied_fp != ""
    rig.run_for(300)
    assert len(rig.action.calls) == 1


def test_touch_chmod_identical_rewrite_reads_and_resync_do_nothing(rig):
    rig.start()
    key = os.path.join(rig.writer.target_dir, "OTHER")
    os.utime(key)
    os.chmod(key, 0o600)
    with open(key) as handle:
        handle.read()
    rig.rotate("v0")  # identical: the writer writes nothing, a hint arrives anyway
    rig.run_for(600)  # ten resyncs
    assert rig.action.calls == []
    assert rig.metrics.value("rechecks_total") >= 9
    assert rig.metrics.value("changes_detected_total") == 0


def test_three_keys_changed_half_a_second_apart_give_one_action(rig):
    rig.start()
    rig.rotate("v1")
    rig.run_for(0.5)
    rig.rotate("v1", THIRD="a")
    rig.run_for(0.5)
    rig.rotate("v1", THIRD="b")
    rig.run_for(0.9)
    assert rig.action.calls == []
    rig.run_for(0.2)
    assert len(rig.action.calls) == 1
    rig.run_for(100)
    assert len(rig.action.calls) == 1


def test_a_missed_event_is_caught_by_the_resync(rig):
    rig.start()
    rig.writer.write({"AGENTOS_SERVICE_TOKEN": "v1", "OTHER": "x"})  # no hint
    rig.run_for(59)
    assert rig.action.calls == []
    rig.run_for(2.5)
    assert len(rig.action.calls) == 1


def test_same_state_at_start_does_nothing_different_state_acts_once(tmp_path):
    first = Rig(tmp_path)
    first.start()
    for _ in range(10):  # ten restarts without a change
        again = first.make()
        again.start(first.clock.t)
        first.engine = again
        first.run_for(30)
    assert first.action.calls == []
    first.writer.write({"AGENTOS_SERVICE_TOKEN": "while-down", "OTHER": "x"})
    restarted = first.make()
    restarted.start(first.clock.t)
    first.engine = restarted
    first.run_for(120)
    assert len(first.action.calls) == 1
    assert StateFile(first.state_path).load().fingerprint == restarted.applied_fp


def test_a_file_that_is_not_ours_is_never_overwritten(rig, canary):
    with open(rig.state_path, "w") as handle:
        handle.write("garbage")
    rig.start()
    rig.rotate("v1")
    rig.run_for(100)
    assert len(rig.action.calls) == 1  # the sidecar works, without persistence
    with open(rig.state_path) as handle:
        assert handle.read() == "garbage"
    assert rig.metrics.value("configuration_warnings", {"reason": "state_file"}) == 1
    _ok, details = rig.engine.health(rig.clock.t)
    assert details["state_file"]["persisting"] is False
    assert "not the sidecar's own" in details["state_file"]["problem"]


def test_our_own_invalid_state_is_a_warning_and_a_new_baseline(rig, canary):
    with open(rig.state_path, "w") as handle:
        handle.write('{"kind": "agentos-secrets-sidecar-state", "version": 2,'
                     ' "fingerprint": 3, "applied_at": 0, "keys": {}}')
    rig.start()
    rig.run_for(100)
    assert rig.action.calls == []
    # the baseline replaced the broken file, so the warning is over
    assert StateFile(rig.state_path).load().fingerprint == rig.engine.applied_fp
    assert rig.metrics.value("configuration_warnings", {"reason": "state_file"}) == 0
    _ok, details = rig.engine.health(rig.clock.t)
    assert details["state_file"] == {"persisting": True, "problem": None}


def test_retryable_failures_back_off_and_never_lose_the_change(rig):
    rig.start()
    rig.action.failures = [ActionError("down", retryable=True) for _ in range(5)]
    rig.rotate("v1")
    rig.run_for(1.0)
    assert len(rig.action.calls) == 1
    times = []
    rig.action.on_apply = lambda: times.append(rig.clock.t)
    rig.run_for(200)
    assert len(rig.action.calls) == 6
    assert rig.actions("success") == 1 and rig.actions("retryable_error") == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]  # exponential growth
    assert rig.metrics.value("pending_change") == 0


def test_config_error_is_retried_only_at_the_slowest_pace(rig):
    rig.start()
    rig.action.failures = [ActionError("404", retryable=False, status=404)] * 2
    rig.rotate("v1")
    rig.run_for(1.0)
    rig.run_for(59)
    assert len(rig.action.calls) == 1
    assert rig.metrics.value("configuration_warnings", {"reason": "config_error"}) == 1
    rig.run_for(1.5)
    assert len(rig.action.calls) == 2
    rig.run_for(61)
    assert len(rig.action.calls) == 3 and rig.actions("success") == 1
    assert rig.actions("config_error") == 2


def test_newest_content_wins_over_a_pending_retry(rig):
    rig.start()
    rig.action.failures = [ActionError("down", retryable=True)]
    rig.rotate("v1")
    rig.run_for(1.0)  # attempt for v1 fails; retry in 1 s
    rig.rotate("v2")
    rig.run_for(30)
    assert rig.actions("success") == 1
    rig.engine.step(rig.clock.t)
    from agentos_secrets.secret import fingerprint_bytes

    assert rig.engine.applied_fp == fingerprint_bytes(rig.engine.seen)
    # what was applied is what is mounted now (v2), never the older v1
    assert rig.engine.applied == rig.engine.detector.refresh()


def test_an_unexpected_exception_is_retried_and_its_text_never_logged(rig, canary):
    rig.start()
    rig.action.failures = [RuntimeError(canary.value)]
    rig.rotate("v1")
    rig.run_for(5)
    assert rig.actions("success") == 1 and rig.actions("retryable_error") == 1
    assert canary.value not in (rig.engine.last_error or "")


def test_storm_breaker_holds_then_applies_the_newest(tmp_path):
    rig = Rig(tmp_path, debounce=0.0, max_wait=0.0, min_interval=10.0)
    rig.start()
    rig.rotate("v1")
    rig.run_for(0.1)
    assert len(rig.action.calls) == 1
    for i in range(2, 6):
        rig.rotate(f"v{i}")
        rig.run_for(1.0)
    assert len(rig.action.calls) == 1  # held
    assert rig.metrics.value("storm_breaker_holding") == 1
    ok, details = rig.engine.health(rig.clock.t)
    assert ok and details["storm_breaker_holding"] is True
    rig.run_for(10)
    assert len(rig.action.calls) == 2
    assert rig.metrics.value("storm_breaker_holding") == 0
    assert rig.engine.applied == rig.engine.detector.refresh()  # v5, the newest


def test_change_reverted_before_the_action_does_nothing(rig):
    rig.start()
    rig.rotate("v1")
    rig.run_for(0.5)
    rig.rotate("v0")
    rig.run_for(100)
    assert rig.action.calls == []


def test_fingerprint_is_passed_only_to_actions_that_use_it(tmp_path, rig):
    rig.start()
    rig.rotate("v1")
    rig.run_for(2)
    assert rig.action.calls == [""]
    other = Rig(tmp_path / "b", uses_fingerprint=True)
    other.start()
    other.rotate("v1")
    other.run_for(2)
    assert other.action.calls == [other.engine.applied_fp]
    assert other.action.calls[0].startswith("fp1:")


def test_readiness_reports_the_action_reason(rig):
    rig.action.ready_reason = "no process with name 'app'"
    ok, details = rig.engine.readiness(rig.clock.t)
    assert not ok and "baseline not recorded yet" in details["reasons"]
    rig.start()
    ok, details = rig.engine.readiness(rig.clock.t + 5)
    assert not ok and details["reasons"] == ["no process with name 'app'"]


def test_health_fails_when_the_loop_stalls(rig):
    rig.start()
    rig.engine.step(rig.clock.t)
    assert rig.engine.health(rig.clock.t + 60)[0]
    ok, details = rig.engine.health(rig.clock.t + 200)
    assert not ok and "loop has not turned" in details["reasons"][0]


def test_the_state_file_keeps_only_the_fingerprint(rig, canary):
    rig.start()
    rig.rotate(canary.value)
    rig.run_for(5)
    with open(rig.state_path, "rb") as handle:
        raw = handle.read()
    canary.assert_absent(raw)
    assert State(StateFile(rig.state_path).load().fingerprint, 0).fingerprint.startswith("fp1:")
    body, _ = rig.metrics.render()
    canary.assert_absent(body)


def test_background_recording_saves_the_newest_fingerprint_in_order(tmp_path):
    rig = Rig(tmp_path, debounce=0.0, max_wait=0.0, min_interval=0.0, background=True)
    rig.start()
    for i in range(1, 4):
        rig.rotate(f"v{i}")
        rig.run_for(0.1)
    rig.engine.flush()
    rig.engine.close()
    assert len(rig.action.calls) == 3 and rig.action.calls[0] == ""
    from agentos_secrets.secret import fingerprint_bytes

    newest = fingerprint_bytes(rig.engine.detector.refresh())
    assert rig.engine.applied_fp == newest
    assert StateFile(rig.state_path).load().fingerprint == newest


def test_close_records_everything_and_ends_the_recorder_thread(tmp_path):
    import threading

    rig = Rig(tmp_path, debounce=0.0, max_wait=0.0, min_interval=0.0, background=True)
    before = set(threading.enumerate())
    rig.start()
    rig.rotate("v1")
    rig.run_for(0.1)
    started = [t for t in set(threading.enumerate()) - before if t.name == "sidecar-recorder"]
    assert len(started) == 1
    rig.engine.close()
    from agentos_secrets.secret import fingerprint_bytes

    newest = fingerprint_bytes(rig.engine.detector.refresh())
    assert StateFile(rig.state_path).load().fingerprint == newest
    assert not started[0].is_alive()
