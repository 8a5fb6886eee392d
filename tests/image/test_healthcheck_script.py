"""sidecar/healthcheck.py, the image's HEALTHCHECK, on the host (no container needed)."""

from __future__ import annotations

import http.server
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "sidecar" / "healthcheck.py"
_spec = importlib.util.spec_from_file_location("sidecar_healthcheck", SCRIPT)
assert _spec is not None and _spec.loader is not None
healthcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(healthcheck)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:9095", ("127.0.0.1", 9095)),
        (":9095", ("127.0.0.1", 9095)),
        ("[::]:9095", ("::1", 9095)),
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("10.0.0.7:9095", ("10.0.0.7", 9095)),
    ],
)
def test_target_follows_the_listen_address(listen, expected):
    assert healthcheck.target(listen) == expected


@pytest.mark.parametrize("listen", ["off", "9095", "127.0.0.1:", "127.0.0.1:0", "h:70000"])
def test_target_refuses_an_address_without_a_port(listen):
    with pytest.raises(ValueError, match="AGENTOS_SIDECAR_LISTEN"):
        healthcheck.target(listen)


@pytest.fixture
def server() -> Iterator[tuple[int, list[int]]]:
    """A loopback server answering /healthz with the status at the head of a list."""
    statuses = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(statuses[0] if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], statuses
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run(listen: str) -> int:
    env = {**os.environ, "AGENTOS_SIDECAR_LISTEN": listen}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, timeout=30).returncode


def test_exit_status_is_the_answer_of_healthz(server):
    port, statuses = server
    assert _run(f"0.0.0.0:{port}") == 0
    statuses[0] = 503
    assert _run(f"127.0.0.1:{port}") == 1


def test_nothing_listening_or_no_port_is_unhealthy(server):
    port, _ = server
    assert _run("off") == 1
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert closed != port
    assert _run(f"127.0.0.1:{closed}") == 1
