"""Orchestrated rotation on 3 pods: convergence gates against the runbook's fixed waits.

The runbook in docs/live-secrets.md rotates by hand: stage, ``sleep 120``, switch,
``sleep 120``, drop (after the grace window). 120 s is sized to the worst case of the
kubelet's 60 to 90 s update delay (its sync period plus cache delay) with a margin.
``agentos-secrets rotate`` instead moves on when every pod's sidecar reports the new value.

Both run on the local cluster harness (examples/cluster.py) at the same time scale,
``1/SCALE``: kubelet delays drawn at random per pod and change (seeded) from 60-90 s
scaled, the runbook's waits 120 s scaled, rotate's poll interval 2 s scaled (so its API
requests per pod are those of a real rotation), the same grace window on both sides (kept
short: in life 600 s on both sides). Measured per rotation, from the API server's request
log: the span from the stage write to the drop write for each way (both start when the
Secret first changes), their ratio, the CLI's API requests per pod, and the rejected
requests of senders calling receivers across the pods at 150 requests/s.

Then the tail case the fixed waits are blind to: one pod whose kubelet takes 270 s (scaled)
for each change, longer than the runbook's wait. The runbook switches before that pod has
staged the new value and its receivers reject the other pods' requests; the gates wait
for it.

``BENCH_QUICK=1``: 1 rotation each way instead of 3, and no tail case.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks._sidecar import QUICK, mode_note, sizes
from examples.cluster import Cluster
from examples.rotation import phase_writes, run_rotate, runbook_rotation, window_flags

TOKEN = "AGENTOS_SERVICE_TOKEN"
PODS = 3
ROTATIONS = sizes(3, 1)
SCALE = 30.0
LIFE_DELAY = (60.0, 90.0)
LIFE_SLOW_DELAY = 270.0  # one pod's kubelet in the tail case
RUNBOOK_WAIT_S = 120.0  # the runbook's `sleep 120` after stage and after switch
LIFE_POLL_S = 2.0  # rotate's default --poll
GRACE_S = 0.5  # the same on both sides; in life 600 s on both sides
QUIET_S = 0.4  # rotate's --quiet, shorter than the grace as in life (60 s < 600 s)
RATE = 150.0
SEED = 2026


def _settle(cluster: Cluster) -> None:
    """Let every kubelet finish its pending sync (rotate's final annotation-only write
    starts one) so the next rotation starts from a quiet cluster, not from a sync that is
    already half-way through its delay."""
    time.sleep(max(pod.kubelet.delay[1] for pod in cluster.pods) + 0.5)


def _span(writes: list[tuple[str, float]]) -> tuple[float, dict[str, float]] | None:
    first: dict[str, float] = {}
    for name, at in writes:
        first.setdefault(name, at)
    if "staged" not in first or "dropped" not in first:
        return None
    return first["dropped"] - first["staged"], first


def _gated(cluster: Cluster, label: str, rotations: int) -> list[dict[str, Any]]:
    poll = LIFE_POLL_S / SCALE
    results = []
    for i in range(1, rotations + 1):
        run = run_rotate(
            cluster, TOKEN, "--generate",
            *window_flags(grace=GRACE_S, quiet=QUIET_S, gate_timeout=60.0, poll=poll),
        )  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"rotate exited {run.returncode}:\n{run.output}")
        measured = _span(phase_writes(cluster, run.started, run.ended))
        if measured is None:
            raise RuntimeError(f"rotate wrote no stage or no drop:\n{run.output}")
        span, first = measured
        requests = sum(1 for r in cluster.api.requests if run.started <= r.at <= run.ended)
        longest = max(
            p.delay for pod in cluster.pods for p in pod.kubelet.projections
            if p.seen_at >= run.started
        )  # fmt: skip
        results.append({"span": span, "requests": requests, "cli": run.seconds})
        print(
            f"  {label} gated   {i}: stage to drop {span:5.2f} s (stage gate"
            f" {first['switched'] - first['staged']:.2f} s, switch gate and drain"
            f" {first['dropped'] - first['switched']:.2f} s); longest kubelet delay"
            f" {longest:.2f} s; {requests} API requests ({requests / PODS:.1f} per pod);"
            f" CLI {run.seconds:.2f} s in all"
        )
        _settle(cluster)
    return results


def _runbook(cluster: Cluster, label: str, rotations: int) -> list[float]:
    spans = []
    for i in range(1, rotations + 1):
        times = runbook_rotation(
            cluster, TOKEN, f"bench-runbook-{i}-{time.monotonic_ns()}".encode(),
            wait=RUNBOOK_WAIT_S / SCALE, grace=GRACE_S,
        )  # fmt: skip
        spans.append(times["dropped"] - times["staged"])
        print(f"  {label} runbook {i}: stage to drop {spans[-1]:5.2f} s")
        _settle(cluster)
    return spans


def _senders(totals: dict[str, int]) -> str:
    ok = totals["rejected"] == 0 and totals["errors"] == 0
    return (
        f"{totals['requests']} requests, {totals['rejected']} rejected, {totals['errors']}"
        f" errors ({'meets' if ok else 'MISSES'} the goal of 0 rejected)"
    )


def _scenario(label: str, slow: float | None, rotations: int) -> dict[str, Any]:
    delay = (LIFE_DELAY[0] / SCALE, LIFE_DELAY[1] / SCALE)
    data = {TOKEN: b"bench-token-initial-value", "AGENTOS_SIGNING_KEY": b"bench-signing-key"}
    with Cluster(data, replicas=PODS, kubelet_delay=delay, seed=SEED, grace=0.0) as cluster:
        if slow is not None:
            cluster.pods[0].kubelet.delay = (slow, slow)
        cluster.start_senders(RATE)
        gated = _gated(cluster, label, rotations)
        gated_senders = cluster.stop_senders()
        _settle(cluster)
        cluster.start_senders(RATE)
        runbook = _runbook(cluster, label, rotations)
        runbook_senders = cluster.stop_senders()
    g = statistics.fmean(r["span"] for r in gated)
    r = statistics.fmean(runbook)
    per_pod = statistics.fmean(x["requests"] for x in gated) / PODS
    print(
        f"  {label}: stage to drop, mean: gated {g:.2f} s, runbook {r:.2f} s, ratio"
        f" runbook/gated {r / g:.2f}x (in life, scaled back: {g * SCALE:.0f} s vs"
        f" {r * SCALE:.0f} s, plus the same grace window on both sides)"
    )
    print(f"  {label}: API requests per pod per rotation (gated): {per_pod:.1f}")
    print(f"  {label}: senders, gated:   {_senders(gated_senders)}")
    print(f"  {label}: senders, runbook: {_senders(runbook_senders)}")
    return {"gated": g, "runbook": r, "per_pod": per_pod}


def main() -> None:
    delay = (LIFE_DELAY[0] / SCALE, LIFE_DELAY[1] / SCALE)
    print(
        f"Orchestrated rotation vs the runbook, {PODS} pods, time scale 1/{SCALE:g} ({mode_note()})"
    )
    print(
        f"  kubelet delay {delay[0]:g}-{delay[1]:g} s per pod and change (life"
        f" {LIFE_DELAY[0]:g}-{LIFE_DELAY[1]:g} s); runbook waits {RUNBOOK_WAIT_S / SCALE:g} s"
        f" after stage and after switch (life {RUNBOOK_WAIT_S:g} s); rotate --poll"
        f" {LIFE_POLL_S / SCALE:.3f} s (life {LIFE_POLL_S:g} s), --quiet {QUIET_S:g} s;"
        f" grace {GRACE_S:g} s on both sides; senders {RATE:g} req/s"
    )
    _scenario("typical", None, ROTATIONS)
    if not QUICK:
        slow = LIFE_SLOW_DELAY / SCALE
        print(f"  tail case: one pod's kubelet takes {slow:g} s (life {LIFE_SLOW_DELAY:g} s)")
        _scenario("tail", slow, 1)


if __name__ == "__main__":
    main()
