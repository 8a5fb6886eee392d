"""A small AgentOS-like HTTP service built on the Loader, for the demo and benchmarks.

It stands in for one of the platform's Go services (``model-policy`` by default):

* ``GET /v1/health``: no authentication, as in AgentOS;
* ``GET /v1/models``: protected; requires ``Authorization: Bearer <AGENTOS_SERVICE_TOKEN>``,
  checked with :meth:`Loader.verify`, which also accepts the value a rotation just
  replaced for ``--grace`` seconds, so callers that still hold the old token keep working
  while they catch up;
* ``POST /-/reload``: what the sidecar calls after a rotation. It re-resolves every key of
  the volume and rebuilds what the service derived from them (here: nothing more than the
  fingerprints it reports). The Loader already follows a rotated file on its own (one
  ``stat`` per call), so authentication does not wait for the reload; a real service
  reloads connection pools, keys loaded into crypto objects and the like;
* ``GET /-/status``: reload times and verification counts, for the demo's timeline;
* ``GET /metrics``: the Loader's verify counters (``agentos_secrets.prometheus``:
  ``agentos_secrets_verify_total{name,result}`` and
  ``agentos_secrets_verify_last_previous_timestamp_seconds{name}``), which
  ``agentos-secrets rotate`` reads before it drops an old value. Like
  an AgentOS service in ``prod`` it requires the service token, in
  ``Authorization: Bearer`` or in ``X-AgentOS-Token`` (kube-apiserver's pod proxy strips
  ``Authorization``); these checks are not counted.

Secret values never appear in its output or responses, only fingerprints. Times are
``time.monotonic()`` seconds, which on Linux is one clock for every process on the host,
so the demo can subtract its own timestamps from the service's.

    python -m examples.service --secret-dir DIR [--port 0] [--grace 3]

It prints one JSON line ``{"event": "listening", "port": N}`` when ready and stops cleanly
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from agentos_secrets import Loader, SecretError
from agentos_secrets.files import iter_keys

TOKEN_NAME = "AGENTOS_SERVICE_TOKEN"


class ServiceState:
    """What the service knows: its Loader, its reloads and its verification counts."""

    def __init__(self, loader: Loader, secret_dir: str, service: str, grace: float) -> None:
        from prometheus_client import CollectorRegistry

        from agentos_secrets.prometheus import register_verify_metrics

        self.loader = loader
        # /metrics checks its caller with a Loader of its own: a scrape made with the
        # old token must not count as a 'previous' match (rotate waits for those to stop)
        self.metrics_loader = Loader(secret_dirs=[secret_dir], grace=grace)
        self.secret_dir = secret_dir
        self.service = service
        self.lock = threading.Lock()
        self.reloads: list[dict[str, Any]] = []
        self.verified: dict[str, int] = {"current": 0, "previous": 0, "rejected": 0}
        self.registry = CollectorRegistry()
        register_verify_metrics(loader, self.registry)

    def verify(self, header: str | None) -> str | None:
        """``current``, ``previous`` (inside the grace window) or None (rejected)."""
        scheme, _, presented = (header or "").partition(" ")
        result: str | None = None
        if scheme == "Bearer" and presented:
            try:
                result = self.loader.verify(TOKEN_NAME, presented)
            except SecretError:
                result = None  # no token configured: nothing can be accepted
        with self.lock:
            self.verified[result or "rejected"] += 1
        return result

    def metrics(self, headers: Any) -> bytes | None:
        """The Prometheus text, or None when the caller has no accepted token."""
        from prometheus_client import generate_latest

        scheme, _, bearer = (headers.get("Authorization") or "").partition(" ")
        presented = (headers.get("X-AgentOS-Token") or (bearer if scheme == "Bearer" else ""))
        try:
            allowed = bool(presented.strip()) and (
                self.metrics_loader.verify(TOKEN_NAME, presented.strip()) is not None
            )
        except SecretError:
            allowed = False
        return bytes(generate_latest(self.registry)) if allowed else None

    def reload(self) -> dict[str, Any]:
        """Re-resolve every key of the volume; return the fingerprints now in use."""
        fingerprints = {}
        for key in iter_keys(self.secret_dir):
            secret = self.loader.get(key)
            if secret is not None:
                fingerprints[key] = secret.fingerprint()
        entry = {"t": time.monotonic(), "fingerprints": fingerprints}
        with self.lock:
            self.reloads.append(entry)
        return entry

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "service": self.service,
                "reloads": list(self.reloads),
                "verified": dict(self.verified),
            }


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes of the demo service; keep-alive (HTTP/1.1), quiet access log."""

    protocol_version = "HTTP/1.1"
    server_version = "agentos-demo"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    state: ServiceState

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: 200 requests per second would drown the demo's timeline."""

    def _send(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="agentos"')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/health":
            self._send(200, {"status": "ok", "service": self.state.service})
        elif self.path == "/v1/models":
            matched = self.state.verify(self.headers.get("Authorization"))
            if matched is None:
                self._send(401, {"error": "unauthorized"})
            else:
                self._send(200, {"models": ["demo-small"], "token": matched})
        elif self.path == "/-/status":
            self._send(200, self.state.status())
        elif self.path == "/metrics":
            text = self.state.metrics(self.headers)
            if text is None:
                self._send(401, {"error": "unauthorized"})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/-/reload":
            entry = self.state.reload()
            self._send(200, {"reloaded": True, "fingerprints": entry["fingerprints"]})
        else:
            self._send(404, {"error": "not found"})


def serve(secret_dir: str, *, port: int, grace: float, service: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    loader = Loader(secret_dirs=[secret_dir], grace=grace)
    state = ServiceState(loader, secret_dir, service, grace)
    state.reload()  # resolve at start-up, like the real services
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.service", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--secret-dir", required=True, help="the mounted Secret volume")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--grace", type=float, default=3.0, help="seconds a replaced token stays accepted"
    )
    parser.add_argument("--service", default="model-policy", help="the AGENTOS_SERVICE name")
    args = parser.parse_args(argv)
    serve(args.secret_dir, port=args.port, grace=args.grace, service=args.service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
