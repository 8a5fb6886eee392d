"""Two ``rotate`` processes on one Secret never interleave their writes."""

from __future__ import annotations

import subprocess
import sys
import time

from rotate_helpers import FAST, KEY, NS, SECRET, SimPod, annotations
from test_rotate_kill_resume import assert_never_rejected

PREV = KEY + "_PREVIOUS"


def _spawn(kubeconfig, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentos_secrets", "rotate", "--kubeconfig", str(kubeconfig),
         KEY, "--output", "plain", *FAST, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def test_two_concurrent_rotations_one_wins_the_other_stops_cleanly(api, kubeconfig):
    pods = [SimPod(api, f"p{index}", frozen=True) for index in range(2)]
    states = [api.secret_data(NS, SECRET)]

    def hook(record):
        if record.method == "PATCH" and record.status == 200:
            data = api.secret_data(NS, SECRET)
            if data != states[-1]:
                states.append(data)

    api.on_request = hook
    first = _spawn(kubeconfig, "--generate", "--gate-timeout", "60")
    second = _spawn(kubeconfig, "--generate", "--gate-timeout", "60")
    # Kubelets hold until both processes have read the Secret, so the two overlap:
    # the loser either sees the winner's phase or loses the write race (409).
    deadline = time.monotonic() + 60
    while sum(1 for r in api.requests if r.method == "GET" and r.path.endswith(SECRET)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for pod in pods:
        pod.frozen = False
    results = [p.communicate(timeout=120) for p in (first, second)]
    codes = sorted([first.returncode, second.returncode])
    errors = b"".join(err for _, err in results).decode()
    assert codes == [0, 1], errors
    assert ("is in progress" in errors) or ("another rotate holds this Secret" in errors)
    final = api.secret_data(NS, SECRET)
    assert PREV not in final
    assert annotations(api)["rotate.agentos.dev/phase"] == "done"
    assert_never_rejected(states)
    assert len(states) == 4, "one rotation's three data writes, no interleaving"


def test_resume_takes_over_and_the_original_process_stops_at_its_next_write(api, kubeconfig):
    pod = SimPod(api, "p0", frozen=True)
    # The gates wait on a frozen pod until the takeover is seen; their timeout must never
    # be what ends the original (a loaded machine can take tens of seconds to start the
    # resumer), so it is far longer than the test's own deadline.
    original = _spawn(kubeconfig, "--generate", "--gate-timeout", "900")
    deadline = time.monotonic() + 240
    while annotations(api).get("rotate.agentos.dev/phase") != "staged":
        assert time.monotonic() < deadline and original.poll() is None
        time.sleep(0.05)
    first_run = annotations(api)["rotate.agentos.dev/run"]
    resumer = _spawn(kubeconfig, "--resume", "--gate-timeout", "900")
    while annotations(api)["rotate.agentos.dev/run"] == first_run:  # the takeover write
        assert time.monotonic() < deadline and resumer.poll() is None
        time.sleep(0.05)
    pod.frozen = False  # now both see the gate pass; only the resumer may write
    _, resumer_err = resumer.communicate(timeout=120)
    assert resumer.returncode == 0, resumer_err.decode()
    _, original_err = original.communicate(timeout=120)
    assert original.returncode == 1, original_err.decode()
    assert b"another rotate holds this Secret now" in original_err
    assert b"phase switched written" not in original_err
    assert annotations(api)["rotate.agentos.dev/phase"] == "done"
    assert PREV not in api.secret_data(NS, SECRET)
