"""``agentos-secrets rotate`` against real pods: the local cluster harness.

tests/rotate/ checks the command against stand-ins; these run the real CLI as a subprocess
on examples/cluster.py: real sidecars answering ``/status`` through the API server's pod
proxy, kubelets projecting the Secret after their own delays, senders calling receivers
across the replicas the whole time. What only real pods show:

* a pod whose kubelet never syncs: the gate times out naming it, nothing is dropped (the
  Secret is left staged), exit 1, and no request was rejected;
* the CLI SIGKILLed in each phase (stage gate, switch gate, the grace wait, right after the
  drop) and finished with ``--resume``: 0 rejected requests, one consistent new token;
* a pod replaced mid-gate by one that mounts the current Secret counts as converged.

The services' own grace window is 0: only the orchestration keeps requests accepted. The
harness's negative control (tests/e2e/test_cluster.py) shows the same traffic rejected
when the token is replaced in one step.
"""

from __future__ import annotations

import time

import pytest

from agentos_secrets.secret import fingerprint_bytes
from examples.cluster import Cluster
from examples.rotation import phase, run_rotate, window_flags

pytestmark = pytest.mark.e2e

TOKEN = "AGENTOS_SERVICE_TOKEN"
RATE = 120.0
DELAY = (0.2, 1.2)


def _cluster(canary, seed: int) -> Cluster:
    data = {TOKEN: canary.value_bytes, "AGENTOS_SIGNING_KEY": b"signing-key-not-rotated"}
    return Cluster(data, replicas=3, kubelet_delay=DELAY, seed=seed, grace=0.0)


def _all_mounted(cluster: Cluster) -> bool:
    version = cluster.secret_version()
    return all(pod.kubelet.mounted_version == version for pod in cluster.pods)


def _assert_dropped_everywhere(cluster: Cluster, old: bytes) -> bytes:
    data = cluster.secret_data()
    assert phase(data, TOKEN, old) == "dropped"
    new = data[TOKEN]
    deadline = time.monotonic() + DELAY[1] + 3
    while not _all_mounted(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _all_mounted(cluster)
    assert data["AGENTOS_SIGNING_KEY"] == b"signing-key-not-rotated", "other keys untouched"
    return new


def _no_leak(canary, cluster: Cluster, *texts: str) -> None:
    canary.assert_absent(*texts)
    for child in cluster.children.started:
        canary.assert_absent(child.output())


def test_a_pod_that_never_syncs_stops_the_rotation_before_anything_is_dropped(canary):
    with _cluster(canary, seed=11) as cluster:
        stuck = cluster.pods[1]
        stuck.kubelet.syncs = False
        cluster.start_senders(RATE)
        run = run_rotate(
            cluster, TOKEN, "--generate", *window_flags(grace=0.5, gate_timeout=4.0)
        )
        time.sleep(DELAY[1])  # any late projection lands before the senders stop
        totals = cluster.stop_senders()
        data = cluster.secret_data()
        _no_leak(canary, cluster, run.output)
    assert run.returncode == 1, run.output
    assert stuck.name in run.output, "the lagging pod is named"
    assert phase(data, TOKEN, canary.value_bytes) == "staged", "nothing switched or dropped"
    assert data[TOKEN] == canary.value_bytes
    assert totals["rejected"] == 0 and totals["errors"] == 0 and totals["requests"] > 0, totals


def _switch_converged(cluster: Cluster, old: bytes) -> bool:
    return phase(cluster.secret_data(), TOKEN, old) == "switched" and _all_mounted(cluster)


@pytest.mark.parametrize("where", ["stage", "switch", "grace", "drop"])
def test_sigkill_in_each_phase_then_resume_rejects_nothing(canary, where):
    old = canary.value_bytes
    kill_when = {
        # right after the stage write, inside the stage gate
        "stage": lambda c: phase(c.secret_data(), TOKEN, old) == "staged",
        # right after the switch write, inside the switch gate
        "switch": lambda c: phase(c.secret_data(), TOKEN, old) == "switched",
        # the switch converged on every pod: rotate is in its grace wait before the drop
        "grace": lambda c: _switch_converged(c, old),
        # the drop is written: rotate is confirming it
        "drop": lambda c: phase(c.secret_data(), TOKEN, old) == "dropped",
    }[where]
    flags = window_flags(grace=1.5, gate_timeout=15.0)
    with _cluster(canary, seed=20 + len(where)) as cluster:
        cluster.start_senders(RATE)
        killed = run_rotate(
            cluster, TOKEN, "--generate", *flags,
            kill_when=lambda: where if kill_when(cluster) else None,
        )  # fmt: skip
        assert killed.killed_in == where, killed.output
        assert killed.returncode == -9
        resumed = run_rotate(cluster, TOKEN, "--resume", *flags)
        new = _assert_dropped_everywhere(cluster, old)
        totals = cluster.stop_senders()
        _no_leak(canary, cluster, killed.output, resumed.output)
    assert resumed.returncode == 0, resumed.output
    assert new != old
    assert fingerprint_bytes(new) in resumed.output or fingerprint_bytes(new) in killed.output
    assert totals["rejected"] == 0 and totals["errors"] == 0, totals
    assert totals["requests"] > RATE  # more than a second of traffic went through


def test_a_pod_replaced_mid_gate_by_one_with_the_current_secret_counts_as_converged(canary):
    old = canary.value_bytes
    with _cluster(canary, seed=31) as cluster:
        stuck = cluster.pods[0]
        stuck.kubelet.syncs = False
        replaced: list[str] = []

        def replace_when_staged() -> None:
            # inside the stage gate (the stuck pod can never pass it): the ReplicaSet
            # replaces the pod; the new one mounts the Secret as it is, staged
            if not replaced and phase(cluster.secret_data(), TOKEN, old) == "staged":
                time.sleep(0.5)
                replaced.append(cluster.replace_pod(stuck).name)

        run = run_rotate(
            cluster, TOKEN, "--generate", *window_flags(grace=0.5, gate_timeout=20.0),
            kill_when=lambda: replace_when_staged(),  # never kills: returns None
        )  # fmt: skip
        new = _assert_dropped_everywhere(cluster, old)
        names = [p.name for p in cluster.pods]
        _no_leak(canary, cluster, run.output)
    assert run.returncode == 0, run.output
    assert replaced and replaced[0] in names and stuck.name not in names
    assert new != old
