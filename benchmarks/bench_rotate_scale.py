"""``agentos-secrets rotate`` over 1,000 pods: API request rate, CPU and memory.

Issue 9 asks that with 1,000 simulated pods the command keeps the API server's request
rate under its client-side limit and its own CPU and memory modest. Set-up, all on
loopback in this process except the command itself:

* the fake kube-apiserver of the tests (TLS, RBAC, Secrets with resourceVersion, pod
  lists with paging, ``pods/proxy``);
* ``BENCH_ROTATE_PODS`` pods (default 1,000) whose ``/status`` is a light in-process
  stand-in (``proxy_handler``), not 1,000 sidecars: each pod's kubelet projects the Secret
  after its own delay (uniform 0-2 s after each change), and its status is built from
  what it has projected, with the real fingerprints, the contract's JSON and the
  ``X-AgentOS-Token`` check;
* ``rotate`` as a real process (``--generate``, grace and quiet 0), timed with its
  resource usage from ``wait4`` (CPU user+system, peak RSS).

Two runs, measured the same way: with the limit (``--qps 100 --burst 200``, the default
5/10 would take ~10 minutes for 1,000 pods: 3 gates x 1,000 reads / 5 per second) and
with the limit effectively off (``--qps 10000``, the highest accepted), the alternative
that shows what the limiter prevents. The rate is counted from the fake's own request
log: the peak in any 1-second window must stay under ``burst + qps x 1.1 s`` (0.1 s for
the jitter between the client's token grant and the arrival at the server), and the
whole run under the bucket's budget, ``burst + qps x (duration + 0.1 s)``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fake_apiserver import FakeApiServer, make_tls  # noqa: E402

from agentos_secrets.secret import fingerprint_bytes  # noqa: E402

PODS = int(os.environ.get("BENCH_ROTATE_PODS", "1000"))
NS, SECRET, KEY = "agentos", "agentos-secrets", "AGENTOS_SERVICE_TOKEN"
TOKEN = "bench-operator-token"
MAX_DELAY = 2.0
JITTER = 0.1


class Cluster:
    """Pods that project the Secret after their own delay; /status from what they hold."""

    def __init__(self, api: FakeApiServer) -> None:
        self.api = api
        self.history: list[tuple[float, str, dict[str, bytes]]] = []
        self.lock = threading.Lock()
        self.bodies: dict[str, tuple[bytes, set[bytes]]] = {}
        self._record()
        for index in range(PODS):
            delay = random.uniform(0, MAX_DELAY)
            api.add_pod(NS, {
                "metadata": {"name": f"agentos-{index:04d}", "labels": {"app": "agentos"}},
                "spec": {
                    "initContainers": [{"name": "secrets-sidecar",
                                        "ports": [{"name": "metrics", "containerPort": 9095}]}],
                    "containers": [{"name": "agentos"}],
                    "volumes": [{"name": "s", "secret": {"secretName": SECRET}}],
                },
            }, proxy_handler=lambda path, headers, d=delay: self.status(d, headers))

    def _record(self) -> None:
        secret = self.api.secret(NS, SECRET)
        assert secret is not None
        rv = secret["metadata"]["resourceVersion"]
        with self.lock:
            if not self.history or self.history[-1][1] != rv:
                data = {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
                self.history.append((time.monotonic(), rv, data))

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(0.02):
            self._record()

    def _body(self, rv: str, data: dict[str, bytes]) -> tuple[bytes, set[bytes]]:
        cached = self.bodies.get(rv)
        if cached is None:
            keys = [{"name": k, "watch": 0, "mounted": fingerprint_bytes(v),
                     "applied": fingerprint_bytes(v), "pending": False}
                    for k, v in sorted(data.items())]
            body = json.dumps({"version": 1, "pod": "stand-in", "action": "none",
                               "ready": True, "keys": keys, "pending": False,
                               "last_action": {"result": "ok", "at": None, "attempts": 1,
                                               "error": None}}).encode()
            accepted = {data[k] for k in (KEY, KEY + "_PREVIOUS") if k in data}
            cached = self.bodies[rv] = (body, accepted)
        return cached

    def status(self, delay: float, headers: dict[str, str]) -> tuple[int, bytes]:
        now = time.monotonic()
        with self.lock:
            state = next((s for s in reversed(self.history) if s[0] <= now - delay),
                         self.history[0])
            body, accepted = self._body(state[1], state[2])
        token = next((v for k, v in headers.items() if k.lower() == "x-agentos-token"), "")
        if token.encode() not in accepted:
            return 401, b'{"version":1,"error":"unauthorized"}'
        return 200, body


def kubeconfig(api: FakeApiServer, directory: str) -> str:
    import yaml

    path = os.path.join(directory, "kubeconfig")
    ca = base64.b64encode(Path(api.tls.ca).read_bytes()).decode()
    with open(path, "w") as handle:
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "bench",
            "clusters": [{"name": "bench", "cluster": {"server": api.url,
                                                       "certificate-authority-data": ca}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "op",
                                                       "namespace": NS}}],
            "users": [{"name": "op", "user": {"token": TOKEN}}],
        }, handle)
    return path


def run_once(tls, directory: str, qps: float, burst: int) -> dict[str, float]:
    with FakeApiServer(tls, token=TOKEN) as api:
        api.put_secret(NS, SECRET, {KEY: b"bench-old-token-value"})
        cluster = Cluster(api)
        stop = threading.Event()
        watcher = threading.Thread(target=cluster.watch, args=(stop,), daemon=True)
        watcher.start()
        config = kubeconfig(api, directory)
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentos_secrets", "rotate", KEY, "--kubeconfig", config,
             "--generate", "--grace", "0", "--quiet", "0", "--poll", "1",
             "--gate-timeout", "900", "--qps", str(qps), "--burst", str(burst),
             "--output", "plain"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        stop.set()
        watcher.join()
        if proc.returncode != 0:
            raise RuntimeError(f"rotate exited {proc.returncode}: {err[-800:]!r}")
        times = sorted(r.at for r in api.requests)
    peak = 0
    left = 0
    for right, at in enumerate(times):
        while at - times[left] >= 1.0:
            left += 1
        peak = max(peak, right - left + 1)
    span = max(times[-1] - times[0], 1e-9)
    return {
        "requests": len(times), "wall": wall, "mean_rate": len(times) / span, "span": span,
        "peak_rate": peak, "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    random.seed(9)
    with tempfile.TemporaryDirectory() as directory:
        tls = make_tls(directory)
        runs = {
            "limited (qps 100, burst 200)": (100.0, 200),
            "unlimited (qps 10000)": (10000.0, 10000),
        }
        results = {name: run_once(tls, directory, *limits) for name, limits in runs.items()}
    print(f"{PODS} pods, 3 gates (stage, switch, drop), kubelet delay 0-{MAX_DELAY:g} s per pod")
    for name, r in results.items():
        print(f"{name:32} {r['requests']:6.0f} requests in {r['wall']:5.1f} s;"
              f" mean {r['mean_rate']:6.1f}/s, peak {r['peak_rate']:5.0f} in any 1 s;"
              f" rotate CPU {r['cpu']:5.1f} s, peak RSS {r['rss_mib']:5.1f} MiB")
    limited = results["limited (qps 100, burst 200)"]
    free = results["unlimited (qps 10000)"]
    allowed = 200 + 100 * (limited["span"] + JITTER)  # the bucket's budget over the run
    # Times are arrivals at the server, not the client's token grants: requests granted
    # 1.0 s apart can arrive closer together after queueing on a loaded machine, so a
    # window is allowed JITTER seconds of extra refill (10 requests at qps 100).
    peak_limit = 200 + 100 * (1 + JITTER)
    print(f"limited peak / (burst + qps x {1 + JITTER:g} s = {peak_limit:.0f}):"
          f" {limited['peak_rate'] / peak_limit:.2f} (must be <= 1); requests / bucket"
          f" budget (burst + qps x (span + {JITTER:g} s)): {limited['requests'] / allowed:.3f}"
          " (must be <= 1)")
    print(f"unlimited peak / limited peak: {free['peak_rate'] / limited['peak_rate']:.2f}x;"
          f" requests per pod: {limited['requests'] / PODS:.2f} (3 gates, converged pods"
          " are not polled again)")
    print(f"CPU per pod per gate: {limited['cpu'] / PODS / 3 * 1000:.2f} ms;"
          f" RSS {limited['rss_mib']:.1f} MiB")
    if limited["peak_rate"] > peak_limit or limited["requests"] > allowed:
        raise SystemExit("the client-side rate limit was exceeded")


if __name__ == "__main__":
    main()
