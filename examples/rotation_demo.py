"""The orchestrated rotation demo: 3 replicas, 200 requests/s, 0 rejected.

What runs (see ``examples/cluster.py``; every part real except the API server and the
kubelet, which follow the real algorithms):

* a fake kube-apiserver over TLS on loopback holding Secret ``agentos/agentos-secrets``,
  Deployment ``agentos-model-policy`` and its 3 pods;
* per pod: its own Secret volume, a kubelet thread that projects the Secret into it after
  its own random delay per change (0.5 to 3 s here, 60 to 90 s in a cluster), the service
  (receiver: ``Loader.verify`` per request), its sender (``get()`` per request, calling the
  other two replicas) and the real ``agentos-secrets sidecar`` with ``GET /status``,
  reached through the API server's pod proxy;
* ``agentos-secrets rotate AGENTOS_SERVICE_TOKEN --generate``, the real CLI as a
  subprocess: stage, switch, drop, each gated on every pod reporting the new value.

The first rotation runs to the end; the second is SIGKILLed right after its switch and
finished with ``rotate --resume``. The senders run throughout at 200 requests/s in all;
the services' own grace window is 0, so only the orchestration keeps them accepted. It
exits non-zero when any check failed and stops everything it started. Secret values are
never printed, only fingerprints. ``AGENTOS_DEMO_TOKEN`` sets the first token (the tests
inject a canary).

    python -m examples.rotation_demo        (or: make demo)
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from types import FrameType

from agentos_secrets.secret import fingerprint_bytes
from examples.cluster import Cluster, Pod
from examples.demo import Timeline
from examples.procs import Line
from examples.rotation import (
    PHASE_ANNOTATION,
    RotateRun,
    phase,
    phase_writes,
    run_rotate,
    window_flags,
)

TOKEN = "AGENTOS_SERVICE_TOKEN"
REPLICAS = 3
RATE = 200.0
KUBELET_DELAY = (0.5, 3.0)  # in a cluster: 60 to 90 s (sync period plus cache delay)
SEED = 9
# Short windows for a demo; what they are in life is printed beside them.
GRACE_S = 1.0  # the drain waits this long after the switch (life: 600)
QUIET_S = 0.5  # ... and until no receiver matched the old value for this long (life: 60)
GATE_TIMEOUT_S = 20.0  # rotate gives up on a phase after this (life: 180)
POLL_S = 0.25  # rotate reads every pod's /status this often while gating (life: 2)
ROTATE_FLAGS = (
    "--generate",
    *window_flags(grace=GRACE_S, quiet=QUIET_S, gate_timeout=GATE_TIMEOUT_S, poll=POLL_S),
)


def _echo(line: Line) -> None:
    print(f"             | {line.text}", flush=True)


def _api_requests(cluster: Cluster, since: float, until: float) -> int:
    return sum(1 for r in cluster.api.requests if since <= r.at <= until)


def _check_volumes(cluster: Cluster, timeline: Timeline, expected: bytes) -> None:
    """Every pod's volume ends with the new token and without ``_PREVIOUS``."""
    fp = fingerprint_bytes(expected)
    deadline = time.monotonic() + KUBELET_DELAY[1] + 2.0
    wrong: list[str] = []
    while True:
        wrong = []
        for pod in cluster.pods:
            names = set(os.listdir(pod.volume))
            with open(os.path.join(pod.volume, TOKEN), "rb") as handle:
                held = fingerprint_bytes(handle.read().strip())
            if held != fp or TOKEN + "_PREVIOUS" in names:
                wrong.append(pod.name)
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    timeline.check(
        not wrong,
        f"every pod's volume holds {TOKEN} {fp} and no {TOKEN}_PREVIOUS"
        if not wrong
        else f"pods not converged to {fp}: {', '.join(wrong)}",
    )


def _convergence(cluster: Cluster, timeline: Timeline, written: dict[str, float]) -> None:
    """Per pod: how long after each phase's write its volume held it (the kubelet's delay;
    a kubelet that wakes up after two writes projects the latest, so both at once)."""
    for pod in cluster.pods:
        parts = []
        for name in ("staged", "switched", "dropped"):
            after = [p.written_at for p in pod.kubelet.projections if p.written_at >= written[name]]
            parts.append(f"{name} +{min(after) - written[name]:.1f} s" if after else f"{name} -")
        timeline.say(f"  {_short(pod)}: volume updated {', '.join(parts)}")


def _short(pod: Pod) -> str:
    return "pod " + pod.name.rsplit("-", 1)[-1]


def _report_rotation(
    cluster: Cluster, timeline: Timeline, runs: list[RotateRun], label: str
) -> None:
    """When each phase was written (so how long each gate held it) and what it cost."""
    since, until = runs[0].started, runs[-1].ended
    first: dict[str, float] = {}
    for name, at in phase_writes(cluster, since, until):
        first.setdefault(name, at)
    needed = ("staged", "switched", "dropped", "done")
    if all(name in first for name in needed):
        t = [first[name] for name in needed]
        timeline.say(
            f"{label}: gates held stage {t[1] - t[0]:.1f} s, switch and drain"
            f" {t[2] - t[1]:.1f} s (grace {GRACE_S:g} s, quiet {QUIET_S:g} s), drop"
            f" {t[3] - t[2]:.1f} s; start to drop {t[2] - since:.1f} s"
        )
    else:
        timeline.check(False, f"{label}: phases written {sorted(first)}, expected {needed}")
        return
    requests = _api_requests(cluster, since, until)
    timeline.say(
        f"{label}: {requests} API requests, {requests / len(cluster.pods):.1f} per pod"
        f" (a poll every {POLL_S:g} s; life: 2 s)"
    )
    _convergence(cluster, timeline, first)


def run(timeline: Timeline) -> None:
    first = (os.environ.get("AGENTOS_DEMO_TOKEN") or f"demo-{secrets.token_urlsafe(18)}").encode()
    data = {
        TOKEN: first,
        "AGENTOS_FED_SHARED_SECRET": f"demo-fed-{secrets.token_urlsafe(12)}".encode(),
        "AGENTOS_SIGNING_KEY": f"demo-signing-{secrets.token_urlsafe(24)}".encode(),
    }
    with Cluster(
        data, replicas=REPLICAS, kubelet_delay=KUBELET_DELAY, seed=SEED, grace=0.0
    ) as cluster:
        timeline.say(
            f"API server {cluster.api.url} (TLS; a local stand-in), Secret"
            f" {cluster.namespace}/{cluster.secret} with 3 keys, Deployment {cluster.deployment}"
            f" ({REPLICAS} replicas); volumes and kubeconfig under {cluster.workdir}"
        )
        for pod in cluster.pods:
            timeline.say(
                f"{_short(pod)}: service pid {pod.service.pid} (verify), sidecar pid"
                f" {pod.sidecar.pid} (--action {cluster.action}, /status through pods/proxy"
                f" :9095), kubelet delay {KUBELET_DELAY[0]:g}-{KUBELET_DELAY[1]:g} s"
                " (life: 60-90 s)"
            )
        cluster.start_senders(RATE)
        timeline.say(
            f"senders: {RATE:g} req/s in all; each pod calls the other two with the token its"
            " own volume holds (get() per request); services' own grace window: 0 s"
        )
        time.sleep(0.5)

        # -- rotation 1: to the end ----------------------------------------------------
        timeline.say(
            f"ROTATION 1: agentos-secrets rotate {TOKEN} --generate --grace {GRACE_S:g}"
            f" --quiet {QUIET_S:g} --poll {POLL_S:g} (life: 600, 60, 2 s)"
        )
        run1 = run_rotate(cluster, TOKEN, *ROTATE_FLAGS, echo=_echo)
        timeline.check(
            run1.returncode == 0, f"rotate exited {run1.returncode} after {run1.seconds:.1f} s"
        )
        second = cluster.secret_data().get(TOKEN, b"")
        timeline.check(second not in (b"", first), "the Secret holds a new token")
        _check_volumes(cluster, timeline, second)
        _report_rotation(cluster, timeline, [run1], "rotation 1")

        # -- rotation 2: SIGKILL after the switch, then --resume -------------------------
        timeline.say("ROTATION 2: the same, SIGKILLed once the switch is written")

        def switched() -> str | None:
            return "switch" if phase(cluster.secret_data(), TOKEN, second) == "switched" else None

        run2 = run_rotate(cluster, TOKEN, *ROTATE_FLAGS, echo=_echo, kill_when=switched)
        obj = cluster.api.secret(cluster.namespace, cluster.secret) or {}
        recorded = (obj.get("metadata", {}).get("annotations") or {}).get(PHASE_ANNOTATION)
        timeline.check(
            run2.killed_in == "switch" and run2.returncode == -signal.SIGKILL,
            f"rotate SIGKILLed in the {run2.killed_in or '?'} phase (exit {run2.returncode});"
            f" the Secret records {PHASE_ANNOTATION}={recorded}",
        )
        timeline.say(f"ROTATION 2, resumed: agentos-secrets rotate {TOKEN} --resume")
        resume_flags = [f for f in ROTATE_FLAGS if f != "--generate"]
        run3 = run_rotate(cluster, TOKEN, "--resume", *resume_flags, echo=_echo)
        timeline.check(
            run3.returncode == 0,
            f"rotate --resume exited {run3.returncode} after {run3.seconds:.1f} s",
        )
        third = cluster.secret_data().get(TOKEN, b"")
        timeline.check(third not in (b"", first, second), "the Secret holds a third token")
        _check_volumes(cluster, timeline, third)
        _report_rotation(cluster, timeline, [run2, run3], "rotation 2")

        # -- the verdict ---------------------------------------------------------------
        totals = cluster.stop_senders()
        timeline.check(
            totals["rejected"] == 0 and totals["errors"] == 0 and totals["requests"] > 0,
            f"senders: {totals['requests']} requests, {totals['accepted']} accepted,"
            f" {totals['rejected']} rejected, {totals['errors']} errors",
        )
        started = [c.pid for c in cluster.children.started]
    timeline.check(
        not cluster.left_behind,
        f"stopped every process started ({len(started)} pids) and every kubelet"
        if not cluster.left_behind
        else f"left behind: {', '.join(cluster.left_behind)}",
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    print(
        f"AgentOS secrets: orchestrated rotation demo ({REPLICAS} replicas, kubelets, real"
        f" sidecars, {RATE:g} req/s)"
    )
    timeline = Timeline()
    timeline.say("starting the API server, 3 pods (service, sidecar, kubelet each) ...")
    try:
        run(timeline)
    except RuntimeError as exc:
        timeline.check(False, str(exc))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    if timeline.failures:
        print(f"result: FAILED ({len(timeline.failures)} check(s) failed)")
        return 1
    print(
        f"result: OK in {time.monotonic() - timeline.start:.1f} s: 0 rejected requests in 2"
        " rotations, one SIGKILLed and resumed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
