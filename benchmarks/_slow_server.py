"""A probe server in a process of its own, for ``bench_sidecar_slow_clients``.

``python -m benchmarks._slow_server bounded|threading DIR``: serves ``/healthz``,
``/startupz``, ``/readyz`` and ``/metrics`` of a started engine watching ``DIR`` on a
free loopback port, prints ``PORT <n>`` and waits for stdin to close.

* ``bounded``: the sidecar's :class:`agentos_secrets.sidecar.server.Server`;
* ``threading``: the server it replaced, kept here verbatim in behaviour: the standard
  library's ``ThreadingHTTPServer``, one thread per connection, no cap, 10 s per read.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentos_secrets.sidecar import logs
from agentos_secrets.sidecar.coalesce import Coalescer, StormBreaker
from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.sidecar.loop import Engine
from agentos_secrets.sidecar.metrics import Metrics
from agentos_secrets.sidecar.retry import Backoff
from agentos_secrets.sidecar.server import MetricsAuth, Server


class _Action:
    kind = "exec"
    uses_fingerprint = False

    def ready(self) -> str | None:
        return None

    def apply(self, fingerprint: str) -> None:
        pass

    def close(self) -> None:
        pass


def _threading_server(engine: Engine, metrics: Metrics) -> ThreadingHTTPServer:
    clock = time.monotonic

    class Handler(BaseHTTPRequestHandler):
        timeout = 10.0  # the old REQUEST_TIMEOUT: per read, so a trickle never ends it

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _json(self, ok: bool, details: dict[str, object]) -> None:
            body = json.dumps({"status": "ok" if ok else "fail", **details}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(*engine.health(clock()))
            elif path == "/readyz":
                self._json(*engine.readiness(clock()))
            elif path == "/startupz":
                self._json(*engine.startup(clock()))
            else:
                body, _ = metrics.render()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    # The same listen backlog as the bounded server (socketserver's default is 5), so
    # the figures compare the thread-per-connection design, not the kernel's queue.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    kind, directory = sys.argv[1], sys.argv[2]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    metrics = Metrics("exec")
    engine = Engine(
        detector=Detector([directory]), action=_Action(), metrics=metrics,
        coalescer=Coalescer(0, 0), breaker=StormBreaker(0, 100), backoff=Backoff(),
        resync=3600,
    )
    engine.start(time.monotonic())
    if kind == "bounded":
        logs.setup("json")  # as the sidecar does
        server = Server(("127.0.0.1", 0), engine, metrics, MetricsAuth({}), time.monotonic)
        server.start()
        port = server.address[1]
    else:
        port = _threading_server(engine, metrics).server_address[1]
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
