"""signal, restart and exec on real processes; target discovery through /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.actions.exec import ExecAction
from agentos_secrets.sidecar.actions.process import TargetSpec, find_target, parse_signal
from agentos_secrets.sidecar.actions.restart import RestartAction
from agentos_secrets.sidecar.actions.signal import SignalAction

# A child that counts SIGHUPs into a file; SIGTERM kills it, unless it is "stubborn".
CHILD = r"""
import signal, sys, time
marker, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
count = 0
def hup(signum, frame):
    global count
    count += 1
    with open(out, "w") as handle:
        handle.write(str(count))
signal.signal(signal.SIGHUP, hup)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def child(tmp_path):
    started: list[subprocess.Popen[bytes]] = []

    def spawn(mode: str = "normal") -> tuple[subprocess.Popen[bytes], str, str]:
        marker = f"agentos-target-{uuid.uuid4().hex}"
        out = str(tmp_path / f"{marker}.count")
        proc = subprocess.Popen([sys.executable, "-c", CHILD, marker, out, mode])
        started.append(proc)
        deadline = time.monotonic() + 10
        while not os.path.exists(out + ".ready"):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        return proc, marker, out

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def _wait_for_count(path: str, count: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(path) as handle:
                if handle.read() == str(count):
                    return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def test_parse_signal():
    import signal

    assert parse_signal("HUP") is signal.SIGHUP
    assert parse_signal("sigusr1") is signal.SIGUSR1
    assert parse_signal("15") is signal.SIGTERM
    with pytest.raises(ValueError):
        parse_signal("NOPE")


def test_signal_reaches_the_one_target_by_cmdline(child):
    proc, marker, out = child()
    action = SignalAction(TargetSpec(cmdline=marker), "HUP")
    assert action.ready() is None
    action.apply("")
    assert _wait_for_count(out, 1)
    action.apply("")
    assert _wait_for_count(out, 2)
    assert proc.poll() is None


def test_signal_by_pidfile(child, tmp_path):
    proc, _, out = child()
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{proc.pid}\n")
    action = SignalAction(TargetSpec(pidfile=str(pidfile)), "SIGHUP")
    assert action.ready() is None
    action.apply("")
    assert _wait_for_count(out, 1)


def test_not_ready_without_exactly_one_target(child, tmp_path):
    missing = SignalAction(TargetSpec(cmdline=f"absent-{uuid.uuid4().hex}"))
    assert "no process" in (missing.ready() or "")
    with pytest.raises(ActionError) as err:
        missing.apply("")
    assert err.value.retryable
    _, marker, _ = child()
    _, marker2, _ = child()
    both = SignalAction(TargetSpec(cmdline=f"{marker}|{marker2}"))
    assert "2 processes" in (both.ready() or "")
    bad_pidfile = tmp_path / "pid"
    bad_pidfile.write_text("not a pid")
    assert "does not hold a pid" in (
        SignalAction(TargetSpec(pidfile=str(bad_pidfile))).ready() or ""
    )


# Run in a child whose command line carries a marker no other process has: matching
# pytest's own command line instead also matched any other pytest run with the same
# arguments on the machine, and the test then failed for a reason it does not test.
SELF_TARGET = r"""
import re, subprocess, sys
from agentos_secrets.sidecar.actions.process import TargetSpec, find_target
marker = sys.argv[1]
spec = TargetSpec(cmdline=re.escape(marker))
alone, why = find_target(spec)
assert alone is None and "no process" in (why or ""), (alone, why)
twin = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
try:
    found, why = find_target(spec)
    assert found is not None and found.pid == twin.pid, (found, why)
finally:
    twin.kill()
    twin.wait(5)
print("ok")
"""


def test_the_sidecar_never_targets_itself():
    # The pattern is in the searching process's own command line, as a sidecar's
    # --target-cmdline is: it is not a target, while another process with the same
    # command line is found (so the pattern does match).
    marker = f"agentos-self-{uuid.uuid4().hex}"
    done = subprocess.run(
        [sys.executable, "-c", SELF_TARGET, marker], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_pause_process_is_refused(tmp_path):
    pause = tmp_path / "pause"
    pause.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    os.chmod(pause, 0o755)
    proc = subprocess.Popen([str(pause)])
    try:
        deadline = time.monotonic() + 5
        while True:
            _, why = find_target(TargetSpec(name="pause"))
            if why and "pause process" in why:
                break
            assert time.monotonic() < deadline, why
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(5)


def test_restart_terminates_a_well_behaved_target(child):
    proc, marker, _ = child()
    RestartAction(TargetSpec(cmdline=marker), grace_period=5).apply("")
    assert proc.wait(5) == -15  # SIGTERM was enough: no SIGKILL


def test_restart_kills_a_target_that_ignores_sigterm(child):
    proc, marker, _ = child("stubborn")
    RestartAction(TargetSpec(cmdline=marker), grace_period=0.3).apply("")
    assert proc.wait(5) == -9


def test_exec_runs_the_command_with_the_fingerprint(tmp_path):
    out = tmp_path / "out"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['AGENTOS_SECRETS_FINGERPRINT'])"
    ExecAction((sys.executable, "-c", script)).apply("fp1:0123456789abcdef")
    assert out.read_text() == "fp1:0123456789abcdef"


def test_exec_failures(tmp_path, canary):
    noisy = f"print({canary.value!r}); raise SystemExit(3)"
    with pytest.raises(ActionError) as err:
        ExecAction((sys.executable, "-c", noisy)).apply("")
    assert err.value.retryable and "status 3" in str(err.value)
    with pytest.raises(ActionError) as err:
        ExecAction((str(tmp_path / "missing"),)).apply("")
    assert not err.value.retryable
    with pytest.raises(ActionError) as err:
        ExecAction((sys.executable, "-c", "import time; time.sleep(10)"), timeout=0.3).apply("")
    assert err.value.retryable and "timed out" in str(err.value)
