"""Helpers for the sidecar tests: a real loopback HTTP server that records requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Webhook:
    """A loopback endpoint; ``responder(n)`` gives the status of the n-th request (0-based)
    and may sleep to simulate a hung app."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    responder: Callable[[int], int] = lambda n: 200
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with hook.arrived:
                n = len(hook.requests)
                hook.requests.append(
                    Recorded(self.command, self.path, dict(self.headers.items()), body)
                )
                hook.arrived.notify_all()
            status = hook.responder(n)
            if status == 0:  # hang until the test ends
                release.wait(30)
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_GET = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/reload"
    try:
        yield hook
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
