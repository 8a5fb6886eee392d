"""Shared parts of the sidecar benchmarks: a reload receiver, process readings, the CLI.

* :class:`Receiver`: a loopback HTTP server that stamps each request with
  ``time.monotonic()`` on arrival (one clock for every process on a Linux host), so
  "detection to request received" is measured where the app would see it.
* :func:`proc_sample`: CPU seconds, context switches (the wakeups) and memory of a running
  process, read from ``/proc``; context switches are summed over every thread.
* :func:`sidecar_argv` / :func:`start_sidecar`: the real ``agentos-secrets sidecar``
  process, waited for until ``/readyz`` answers 200.

``BENCH_QUICK=1`` shrinks every benchmark to a smoke run; figures from it are not the
issue's sizes and say so.
"""

from __future__ import annotations

import http.client
import http.server
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from examples.procs import Child, Children, python_module

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
_TICK = os.sysconf("SC_CLK_TCK")


def sizes(full: int, quick: int) -> int:
    """The issue's size, or the smoke size under ``BENCH_QUICK=1``."""
    return quick if QUICK else full


def mode_note() -> str:
    return "QUICK smoke run (BENCH_QUICK=1): not the issue's sizes" if QUICK else "full run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 is the 198th value)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


# -- the receiver ---------------------------------------------------------------------------


class Receiver:
    """Count and time-stamp requests per path; answer 200 at once."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                at = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with receiver._cond:
                    receiver.arrivals.setdefault(self.path, []).append(at)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def count(self, path: str) -> int:
        with self._cond:
            return len(self.arrivals.get(path, []))

    def wait_count(self, path: str, count: int, timeout: float) -> float | None:
        """Arrival time of the ``count``-th request to ``path``, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.arrivals.get(path, [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self.arrivals[path][count - 1]


# -- /proc ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float
    switches: int
    threads: int
    rss_kib: int
    hwm_kib: int


def _status_fields(path: str) -> dict[str, str]:
    fields = {}
    with open(path) as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def proc_sample(pid: int) -> ProcSample:
    """CPU (user + system, all threads), context switches of all threads, memory."""
    with open(f"/proc/{pid}/stat") as handle:
        after_comm = handle.read().rsplit(")", 1)[1].split()
    utime, stime = int(after_comm[11]), int(after_comm[12])
    switches = 0
    tasks = os.listdir(f"/proc/{pid}/task")
    for task in tasks:
        try:
            fields = _status_fields(f"/proc/{pid}/task/{task}/status")
        except FileNotFoundError:
            continue
        switches += int(fields["voluntary_ctxt_switches"])
        switches += int(fields["nonvoluntary_ctxt_switches"])
    status = _status_fields(f"/proc/{pid}/status")
    return ProcSample(
        cpu_s=(utime + stime) / _TICK,
        switches=switches,
        threads=len(tasks),
        rss_kib=int(status["VmRSS"].split()[0]),
        hwm_kib=int(status["VmHWM"].split()[0]),
    )


# -- the sidecar ----------------------------------------------------------------------------


def sidecar_argv(watch: list[str], url: str | None, listen: int, *extra: str) -> list[str]:
    """The sidecar's command line: ``--action http --url URL`` unless ``url`` is None."""
    argv = ["sidecar"]
    for directory in watch:
        argv += ["--watch", directory]
    if url is not None:
        argv += ["--action", "http", "--url", url]
    argv += ["--listen", f"127.0.0.1:{listen}", *extra]
    return python_module("agentos_secrets", *argv)


def _readyz(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def start_sidecar(
    children: Children, name: str, watch: list[str], url: str | None, *extra: str
) -> Child:
    """Start the real sidecar and wait (up to 20 s) until ``/readyz`` says 200."""
    listen = free_port()
    child = children.start(name, sidecar_argv(watch, url, listen, *extra))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{child.output()}")
        if _readyz(listen) == 200:
            return child
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after 20 s:\n{child.output()}")


def start_baseline(children: Children, name: str, watch: list[str], url: str, *extra: str) -> Child:
    """Start the raw-inotify reloader and wait until its watches are set."""
    child = children.start(
        name, python_module("benchmarks._inotify_reloader", "--url", url, *extra, *watch)
    )
    if child.wait_line(lambda line: line.text == "ready", 20) is None:
        raise RuntimeError(f"{name} did not start:\n{child.output()}")
    return child
