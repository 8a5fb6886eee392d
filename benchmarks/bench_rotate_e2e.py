"""Orchestrated rotation on 3 pods: convergence gates against the runbook's fixed waits.

The runbook in docs/live-secrets.md rotates by hand: stage, ``sleep 120``, switch,
``sleep 120``, then drop after the grace window. 120 s is sized to the worst case of the
kubelet's 60 to 90 s update delay (its sync period plus cache delay) with a margin:
1.33 times the longest delay. ``agentos-secrets rotate`` instead moves on when every pod's
sidecar reports the new value.

Both are measured at the same scale on the local cluster harness (examples/cluster.py):
kubelet delays drawn at random per pod and change (seeded) from 60-90 s divided by
``SCALE``, the runbook's waits 120 s divided by ``SCALE``, the same grace window for both.
Per rotation: time from the CLI's start to its drop write (read from the API server's
request log), the runbook done by hand on the same cluster with its fixed waits
(``examples.rotation.runbook_rotation``), their ratio, and the API requests the CLI made
per pod. Senders call receivers across the pods at 150 requests/s throughout; rejected
requests are reported for each way (the goal: 0).

``BENCH_QUICK=1``: 1 rotation instead of 3.
"""

from __future__ import annotations

import statistics
import time

from benchmarks._sidecar import mode_note, sizes
from examples.cluster import Cluster
from examples.rotation import run_rotate, runbook_rotation, window_flags

TOKEN = "AGENTOS_SERVICE_TOKEN"
PODS = 3
ROTATIONS = sizes(3, 1)
SCALE = 30.0  # 60-90 s of kubelet delay become 2-3 s
LIFE_DELAY = (60.0, 90.0)
RUNBOOK_WAIT_S = 120.0  # the runbook's `sleep 120` after stage and after switch
GRACE_S = 0.5  # the same for both; in life 600 s, dominant and identical on both sides
RATE = 150.0
SEED = 2026


def _drop_time(cluster: Cluster, since: float) -> tuple[float | None, int]:
    """When the CLI's third Secret write (the drop) arrived; its requests until then."""
    path = f"/api/v1/namespaces/{cluster.namespace}/secrets/{cluster.secret}"
    requests = [r for r in cluster.api.requests if r.at >= since]
    writes = [
        r.at
        for r in requests
        if r.method in ("PATCH", "PUT") and r.path.split("?")[0] == path and r.status < 300
    ]
    return (writes[2] if len(writes) >= 3 else None), len(requests)


def _gated(cluster: Cluster, delay: tuple[float, float]) -> tuple[list[float], list[float]]:
    """ROTATIONS rotations with the CLI; (start-to-drop seconds, API requests per pod)."""
    gated: list[float] = []
    per_pod: list[float] = []
    for i in range(1, ROTATIONS + 1):
        run = run_rotate(
            cluster, TOKEN, "--generate",
            *window_flags(grace=GRACE_S, gate_timeout=10 * delay[1]),
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"rotate exited {run.returncode}:\n{run.output}")
        dropped, requests = _drop_time(cluster, run.started)
        if dropped is None:
            raise RuntimeError(f"rotate made no drop write:\n{run.output}")
        gated.append(dropped - run.started)
        per_pod.append(requests / PODS)
        drawn = [
            max(p.delay for p in pod.kubelet.projections if p.seen_at >= run.started)
            for pod in cluster.pods
        ]
        print(
            f"  gated   {i}: start to drop {gated[-1]:5.2f} s; longest kubelet delay per pod"
            f" {', '.join(f'{d:.2f}' for d in drawn)} s; {requests} API requests"
            f" ({requests / PODS:.1f} per pod); CLI total {run.seconds:.2f} s"
        )
        time.sleep(0.5)
    return gated, per_pod


def _runbook(cluster: Cluster, wait: float) -> list[float]:
    """ROTATIONS rotations by the runbook's fixed waits; start-to-drop seconds."""
    spans: list[float] = []
    for i in range(1, ROTATIONS + 1):
        started = time.monotonic()
        times = runbook_rotation(
            cluster, TOKEN, f"bench-runbook-{i}-{time.monotonic_ns()}".encode(),
            wait=wait, grace=GRACE_S,
        )  # fmt: skip
        spans.append(times["drop"] - started)
        print(f"  runbook {i}: start to drop {spans[-1]:5.2f} s")
        time.sleep(0.5)
    return spans


def _verdict(totals: dict[str, int]) -> str:
    ok = totals["rejected"] == 0 and totals["errors"] == 0
    return (
        f"{totals['requests']} requests, {totals['rejected']} rejected, {totals['errors']}"
        f" errors ({'meets' if ok else 'MISSES'} the goal of 0 rejected)"
    )


def main() -> None:
    delay = (LIFE_DELAY[0] / SCALE, LIFE_DELAY[1] / SCALE)
    wait = RUNBOOK_WAIT_S / SCALE
    print(
        f"Orchestrated rotation, {PODS} pods, {ROTATIONS} rotation(s) each way, time scale"
        f" 1/{SCALE:g} ({mode_note()})"
    )
    print(
        f"  kubelet delay {delay[0]:g}-{delay[1]:g} s per pod and change (life {LIFE_DELAY[0]:g}"
        f"-{LIFE_DELAY[1]:g} s); runbook waits {wait:g} s after stage and after switch (life"
        f" {RUNBOOK_WAIT_S:g} s); grace {GRACE_S:g} s on both sides; senders {RATE:g} req/s"
    )
    data = {TOKEN: b"bench-token-initial-value", "AGENTOS_SIGNING_KEY": b"bench-signing-key"}
    with Cluster(data, replicas=PODS, kubelet_delay=delay, seed=SEED, grace=0.0) as cluster:
        cluster.start_senders(RATE)
        gated, per_pod = _gated(cluster, delay)
        gated_totals = cluster.stop_senders()
        cluster.start_senders(RATE)
        runbook = _runbook(cluster, wait)
        runbook_totals = cluster.stop_senders()
    g, r = statistics.fmean(gated), statistics.fmean(runbook)
    print(
        f"  mean start to drop: gated {g:.2f} s, runbook {r:.2f} s: the gates are"
        f" {r / g:.2f}x faster at this scale (life, scaled back: ~{(g - GRACE_S) * SCALE:.0f} s"
        f" vs {(r - GRACE_S) * SCALE:.0f} s before the grace window)"
    )
    print(f"  API requests per pod per rotation (gated): {statistics.fmean(per_pod):.1f}")
    print(f"  senders during the gated rotations:  {_verdict(gated_totals)}")
    print(f"  senders during the runbook rotations: {_verdict(runbook_totals)}")


if __name__ == "__main__":
    main()
