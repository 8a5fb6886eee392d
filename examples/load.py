"""A load client for the demo service: a steady request rate with the token it last read.

It behaves like another AgentOS service calling this one: it reads
``AGENTOS_SERVICE_TOKEN`` from the mounted Secret volume through its own
:class:`~agentos_secrets.Loader`, re-reads it every ``--refresh`` seconds (a client
does not stat its token file before every call), and keeps one HTTP/1.1 connection
open. During a rotation it therefore presents the old token for up to ``--refresh``
seconds after the file changed: exactly the window the service's grace period covers.

``--url`` may be given several times: the requests then go round-robin to each URL,
one kept-open connection per URL (a pod of the local cluster harness calling the other
replicas). ``--refresh 0`` reads the token through ``get()`` before every request, as the
rotation runbook asks of senders.

It runs until SIGTERM/SIGINT (or ``--duration``), then prints one JSON line with the
counts (requests, accepted, rejected, errors) and the monotonic times of rejections.
Tokens are never printed.

    python -m examples.load --url http://127.0.0.1:8082/v1/models --secret-dir DIR
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from types import FrameType

from agentos_secrets import Loader, SecretError

TOKEN_NAME = "AGENTOS_SERVICE_TOKEN"


@dataclass
class Counts:
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    token_reads_failed: int = 0
    rejected_at: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {
            "event": "load-summary",
            "requests": self.requests,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "token_reads_failed": self.token_reads_failed,
            "rejected_at": [round(t, 4) for t in self.rejected_at[:100]],
            "latency_ms_p50": pct(0.50),
            "latency_ms_p99": pct(0.99),
        }


class Client:
    """One kept-open connection; reconnects after a failure."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit(f"load: --url must be an http:// URL, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, token: str) -> int:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request("GET", self.path, headers={"Authorization": f"Bearer {token}"})
            response = self._conn.getresponse()
            response.read()
            if response.will_close:
                self.close()
            return response.status
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run(
    url: str | list[str],
    secret_dir: str,
    *,
    rate: float,
    refresh: float,
    duration: float | None,
    timeout: float = 2.0,
) -> Counts:
    """Call ``url`` (round-robin over several) at ``rate`` per second until stopped."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loader = Loader(secret_dirs=[secret_dir])
    clients = [Client(u, timeout) for u in ([url] if isinstance(url, str) else url)]
    counts = Counts()
    interval = 1.0 / rate
    start = time.monotonic()
    deadline = start + duration if duration else float("inf")
    token: str | None = None
    token_read_at = float("-inf")
    print(json.dumps({"event": "load-started", "rate": rate, "refresh_s": refresh}), flush=True)
    next_at = start
    while not stopping and time.monotonic() < deadline:
        now = time.monotonic()
        if now - token_read_at >= refresh or token is None:
            try:
                token = loader.require(TOKEN_NAME).reveal()
            except SecretError:
                counts.token_reads_failed += 1
            token_read_at = now
        if token is not None:
            client = clients[counts.requests % len(clients)]
            counts.requests += 1
            sent = time.monotonic()
            try:
                status = client.get(token)
            except (OSError, http.client.HTTPException):
                counts.errors += 1
            else:
                counts.latencies_ms.append((time.monotonic() - sent) * 1000)
                if status == 200:
                    counts.accepted += 1
                elif status in (401, 403):
                    counts.rejected += 1
                    counts.rejected_at.append(sent)
                else:
                    counts.errors += 1
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        elif pause < -1.0:  # fell far behind (a stalled machine): do not burst to catch up
            next_at = time.monotonic()
    for client in clients:
        client.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--url",
        required=True,
        action="append",
        help="the protected endpoint to call (repeatable: round-robin)",
    )
    parser.add_argument("--secret-dir", required=True, help="the mounted Secret volume")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument(
        "--refresh", type=float, default=0.1, help="seconds between re-reads of the token"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.refresh < 0:
        parser.error("--rate must be positive and --refresh not negative")
    counts = run(
        args.url, args.secret_dir, rate=args.rate, refresh=args.refresh, duration=args.duration
    )
    print(json.dumps(counts.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
