"""The probe server under slow clients: threads, memory and probe latency.

The sidecar's port is open to the pod network. Two servers, each in a process of its own
and measured in the same run (``benchmarks/_slow_server.py``):

* ``bounded``: the sidecar's server (one I/O thread, 2 workers, at most 64 connections;
  a new connection evicts, with a 503, the one that has waited longest for its head);
* ``threading``: the ``ThreadingHTTPServer`` it replaced (a thread per connection).

For N = 0, 200 and 1000 slow clients (``BENCH_QUICK=1``: 0, 50, 200), each client
connects, sends half a request head and then one byte every 2 s, and reconnects when
the server closes it, so the pressure stays at N for the whole window. Meanwhile 100
sequential ``GET /healthz`` probes (fresh connection each, 5 s timeout, the kubelet's
default ``timeoutSeconds`` is 1 s) are timed. Figures: the server's thread count and
RSS (``/proc/PID/status``, highest sample), probe p50/p99, failed probes, and the lines
the server wrote to stderr that are not JSON (tracebacks of reset connections). Loopback
only; every client socket is closed at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import mode_note, percentile, proc_sample, sizes

CLIENTS = (0, sizes(200, 50), sizes(1000, 200))
PROBES = sizes(100, 30)
SETTLE_S = 1.5
TRICKLE_S = 2.0
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "


class SlowClients:
    """``count`` sockets kept half-way through a request head, reconnected when closed."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.socks: list[socket.socket | None] = [None] * count
        self.reconnects = 0
        self._stop = threading.Event()
        for i in range(count):
            self.socks[i] = self._connect()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(HALF_HEAD)
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_S):
            for i, sock in enumerate(self.socks):
                if self._stop.is_set():
                    return
                alive = sock is not None
                if sock is not None:
                    try:
                        if sock.recv(4096, socket.MSG_PEEK) == b"":
                            alive = False
                    except BlockingIOError:
                        pass
                    except OSError:
                        alive = False
                    if alive:
                        try:
                            sock.send(b"a")
                        except OSError:
                            alive = False
                if not alive:
                    if sock is not None:
                        sock.close()
                    self.socks[i] = self._connect()
                    self.reconnects += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.socks:
            if sock is not None:
                sock.close()


def _probe(port: int) -> float | None:
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        return None
    return time.perf_counter() - started if status == 200 else None


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _measure(kind: str, directory: str, clients: int) -> dict[str, float]:
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._slow_server", kind, directory],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        crowd = SlowClients(port, clients)
        try:
            time.sleep(SETTLE_S)
            threads, rss = 0, 0
            latencies: list[float] = []
            failed = 0
            for i in range(PROBES):
                if i % 10 == 0:
                    sample = proc_sample(proc.pid)
                    threads = max(threads, sample.threads)
                    rss = max(rss, sample.rss_kib)
                took = _probe(port)
                if took is None:
                    failed += 1
                else:
                    latencies.append(took)
                time.sleep(0.02)
            sample = proc_sample(proc.pid)
            threads, rss = max(threads, sample.threads), max(rss, sample.rss_kib)
        finally:
            crowd.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").splitlines()
        stderr.close()
    return {
        "not_json": sum(1 for line in lines if not _is_json(line)),
        "threads": threads, "rss_mib": rss / 1024, "failed": failed,
        "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"  {mode_note()}; {PROBES} probes per row; RLIMIT_NOFILE {hard}")
    with tempfile.TemporaryDirectory() as tmp:
        volume = AtomicWriter(os.path.join(tmp, "vol"))
        volume.write({"KEY": "v0"})
        rows: dict[tuple[str, int], dict[str, float]] = {}
        for clients in CLIENTS:
            for kind in ("bounded", "threading"):
                row = rows[(kind, clients)] = _measure(kind, volume.target_dir, clients)
                print(
                    f"  {kind:<9} {clients:5d} slow clients: threads {row['threads']:5.0f}"
                    f"  RSS {row['rss_mib']:6.1f} MiB  probe p50 {row['p50_ms']:7.2f} ms"
                    f"  p99 {row['p99_ms']:8.2f} ms  failed {row['failed']:.0f}/{PROBES}"
                    f"  stderr lines not JSON {row['not_json']:.0f}",
                    flush=True,
                )
        print("  ratios bounded / threading (lower is better):")
        for clients in CLIENTS:
            new, old = rows[("bounded", clients)], rows[("threading", clients)]
            print(
                f"    {clients:5d} clients: threads {new['threads'] / old['threads']:.2f}x"
                f"  RSS {new['rss_mib'] / old['rss_mib']:.2f}x"
                f"  probe p99 {new['p99_ms'] / old['p99_ms']:.2f}x"
            )


if __name__ == "__main__":
    main()
