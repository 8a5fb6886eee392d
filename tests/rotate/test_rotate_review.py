"""Defects found in review of ``rotate``, each pinned by a test that failed before its fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from fake_apiserver import FakeApiServer
from rotate_helpers import (
    FAST,
    KEY,
    NS,
    OLD,
    OPERATOR_TOKEN,
    OTHER,
    SECRET,
    SimPod,
    annotations,
    write_kubeconfig,
)
from test_rotate_kill_resume import assert_never_rejected

FED = "AGENTOS_FED_SHARED_SECRET"
FED_PREV = FED + "_PREVIOUS"


def test_federation_killed_between_the_two_stage_writes_resumes_without_rejecting(
    api, tls, tmp_path, canary
):
    """Killed after node B's stage write, before node A's: node A's old value must survive.

    The resume read node A as 'not in progress' and never learned its old value, so the
    switch wrote ``NAME_PREVIOUS`` = None there: node A's old value was dropped at once.
    """
    with FakeApiServer(tls, token=OPERATOR_TOKEN) as node_b:
        node_b.put_secret(NS, SECRET, {KEY: b"node-b-service-token", FED: OTHER})
        api.put_secret(NS, SECRET, {KEY: OLD, FED: OTHER})
        for server in (api, node_b):
            SimPod(server, "federation-0", app="agentos-federation")
        config = write_kubeconfig(tmp_path / "kubeconfig", {"node-a": api, "node-b": node_b})
        value = tmp_path / "new"
        value.write_bytes(canary.value_bytes)
        value.chmod(0o600)
        states_a = [api.secret_data(NS, SECRET)]
        killed = threading.Event()
        proc: subprocess.Popen[bytes] | None = None

        def hook_b(record):
            if record.method == "PATCH" and record.status == 200 and not killed.is_set():
                killed.set()
                os.kill(proc.pid, signal.SIGKILL)

        def hook_a(record):
            if record.method == "PATCH" and record.status == 200:
                data = api.secret_data(NS, SECRET)
                if data != states_a[-1]:
                    states_a.append(data)

        node_b.on_request = hook_b
        api.on_request = hook_a
        base = [sys.executable, "-m", "agentos_secrets", "rotate", "--kubeconfig", str(config),
                FED, "--context", "node-a", "--context", "node-b", "--output", "plain", *FAST]
        proc = subprocess.Popen([*base, "--from-file", str(value)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        out, err = proc.communicate(timeout=120)
        assert killed.is_set(), err.decode()
        canary.assert_absent(out, err)
        assert annotations(node_b)["rotate.agentos.dev/phase"] == "staged"
        assert "rotate.agentos.dev/phase" not in annotations(api)

        resumed = subprocess.run([*base, "--resume"], capture_output=True, timeout=120,
                                 stdin=subprocess.DEVNULL, check=False)
        canary.assert_absent(resumed.stdout, resumed.stderr)
        assert_never_rejected_fed(states_a)
        assert resumed.returncode == 0, resumed.stderr.decode()
        for server in (api, node_b):
            final = server.secret_data(NS, SECRET)
            assert final[FED] == canary.value_bytes and FED_PREV not in final


def assert_never_rejected_fed(states):
    renamed = [{k.replace(FED, "AGENTOS_SERVICE_TOKEN"): v for k, v in s.items()}
               for s in states]
    assert_never_rejected(renamed)
