"""``rotate`` killed (SIGKILL) at every point, then ``--resume``: it finishes, 0 rejected.

The command runs as a real process against the fake API server; the fake's
``on_request`` hook kills it either right after a phase's Secret write was applied (the
answer never reaches it: the worst moment) or in the middle of the gate that follows.

"0 rejected" is checked on the sequence of Secret states the writes produced: the gates
guarantee every pod holds state i before state i+1 is written, so the pods only ever mix
two consecutive states, and a request is rejected only if the value one of them sends
(``NAME``) is not accepted (``NAME`` or ``NAME_PREVIOUS``) by the other. The demo
harness proves the same with real processes and load.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading

import pytest
from rotate_helpers import FAST, KEY, NS, OLD, SECRET, SimPod, annotations

PREV = KEY + "_PREVIOUS"


def _accepts(state: dict[str, bytes], value: bytes) -> bool:
    return value in (state.get(KEY), state.get(PREV))


def assert_never_rejected(states: list[dict[str, bytes]]) -> None:
    for before, after in itertools.pairwise(states):
        assert _accepts(after, before[KEY]), "a pod still on the old state would be rejected"
        assert _accepts(before, after[KEY]), "an updated pod's value would be rejected"


def _spawn(kubeconfig, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "agentos_secrets", "rotate", "--kubeconfig", str(kubeconfig),
         KEY, *args, "--output", "plain", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("where", "phase"),
    [("write", "staged"), ("gate", "staged"), ("write", "switched"), ("gate", "switched"),
     ("write", "dropped"), ("gate", "dropped"), ("write", "done")],
)
def test_killed_then_resumed_finishes_with_nothing_rejected(api, kubeconfig, tmp_path,
                                                            canary, where, phase):
    pods = [SimPod(api, f"p{i}") for i in range(3)]
    value = tmp_path / "new"
    value.write_bytes(canary.value_bytes)
    value.chmod(0o600)
    states = [api.secret_data(NS, SECRET)]
    killed = threading.Event()
    current = {"phase": None}
    proc: subprocess.Popen[bytes] | None = None

    def hook(record):
        if record.method == "PATCH" and record.status == 200:
            data = api.secret_data(NS, SECRET)
            if data != states[-1]:
                states.append(data)
            current["phase"] = annotations(api).get("rotate.agentos.dev/phase")
            if where == "write" and current["phase"] == phase and not killed.is_set():
                killed.set()
                os.kill(proc.pid, signal.SIGKILL)
        elif (where == "gate" and "/proxy/" in record.path and current["phase"] == phase
              and not killed.is_set()):
            killed.set()
            os.kill(proc.pid, signal.SIGKILL)

    api.on_request = hook
    proc = _spawn(kubeconfig, "--from-file", str(value))
    out, err = proc.communicate(timeout=120)
    assert killed.is_set(), err.decode()
    assert proc.returncode == -signal.SIGKILL
    canary.assert_absent(out, err)
    assert annotations(api)["rotate.agentos.dev/phase"] == phase

    resumed = _spawn(kubeconfig, "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()
    canary.assert_absent(out, err)
    if phase == "done":
        assert b"the last rotation of AGENTOS_SERVICE_TOKEN is done already" in err
    final = api.secret_data(NS, SECRET)
    assert final[KEY] == canary.value_bytes and PREV not in final
    assert annotations(api)["rotate.agentos.dev/phase"] == "done"
    assert_never_rejected(states)
    assert states[0][KEY] == OLD
    for pod in pods:
        assert pod.mounted[KEY] == canary.value_bytes


def test_the_invariant_checker_can_fail():
    old, new = {KEY: b"a"}, {KEY: b"b"}
    with pytest.raises(AssertionError):
        assert_never_rejected([old, new])  # a direct replacement rejects
    assert_never_rejected([old, {KEY: b"a", PREV: b"b"}, {KEY: b"b", PREV: b"a"}, new])
