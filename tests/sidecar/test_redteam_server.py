"""Red team, the probe server: slow clients, floods, malformed heads, fail-open auth.

Real HTTP on loopback against the real :class:`Server`. Each test failed against the
``ThreadingHTTPServer`` it replaced (a thread per connection, no cap, any body read,
``AGENTOS_METRICS_REQUIRE_AUTH=true`` read as "off"); none asserts on timings.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_secrets import Loader
from agentos_secrets.sidecar import server as server_module
from agentos_secrets.sidecar.coalesce import Coalescer, StormBreaker
from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.sidecar.httpio import (
    MAX_HEADERS,
    MAX_TARGET,
    HttpError,
    find_head_end,
    parse_head,
)
from agentos_secrets.sidecar.loop import Engine
from agentos_secrets.sidecar.metrics import Metrics
from agentos_secrets.sidecar.retry import Backoff
from agentos_secrets.sidecar.server import MetricsAuth, Server
from agentos_secrets.testing import AtomicWriter


class _Action:
    kind = "http"
    uses_fingerprint = False

    def ready(self) -> str | None:
        return None

    def apply(self, fingerprint: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def serve(tmp_path):
    started: list[Server] = []

    def make(env: dict[str, str] | None = None) -> tuple[str, int, Server, Engine]:
        writer = AtomicWriter(tmp_path / f"vol{len(started)}")
        writer.write({"KEY": "v0"})
        metrics = Metrics("http")
        engine = Engine(
            detector=Detector([writer.target_dir]), action=_Action(), metrics=metrics,
            coalescer=Coalescer(0, 0), breaker=StormBreaker(0, 100), backoff=Backoff(),
            resync=60,
        )
        engine.start(time.monotonic())
        env = env or {}
        server = Server(("127.0.0.1", 0), engine, metrics,
                        MetricsAuth(env, Loader(env=env)), time.monotonic)
        server.start()
        started.append(server)
        host, port = server.address
        return host, port, server, engine

    yield make
    for server in started:
        server.stop()


def _exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


def _slow_clients(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # and never the rest
        socks.append(sock)
    return socks


# -- class 6: a boolean that is not understood fails closed ----------------------------------

@pytest.mark.parametrize("word", ["true", "TRUE", "yes", "on", " 1 "])
def test_require_auth_takes_every_true_word(serve, word):
    # `true` used to leave /metrics open: only "1" was understood.
    _, port, _, _ = serve({"AGENTOS_METRICS_REQUIRE_AUTH": word})
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401


def test_require_auth_with_an_unknown_word_fails_closed_and_warns(serve, caplog):
    caplog.set_level(logging.WARNING)
    _, port, _, _ = serve({"AGENTOS_METRICS_REQUIRE_AUTH": "enabled"})
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
    assert any("AGENTOS_METRICS_REQUIRE_AUTH" in r.getMessage() for r in caplog.records)
    assert all("enabled" not in r.getMessage() for r in caplog.records)
    auth = MetricsAuth({"AGENTOS_METRICS_REQUIRE_AUTH": "enabled"})
    assert auth.required and auth.setting_problem


@pytest.mark.parametrize("word", ["0", "false", "no", "off", ""])
def test_require_auth_false_words_leave_metrics_open(serve, word):
    _, port, _, _ = serve({"AGENTOS_METRICS_REQUIRE_AUTH": word})
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


# -- class 3: exhaustion --------------------------------------------------------------------

def test_slow_clients_cost_no_thread_and_probes_still_answer(serve, monkeypatch):
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 60.0)
    _, port, server, _ = serve()
    before = threading.active_count()
    socks = _slow_clients(port, 200)
    try:
        time.sleep(server_module.EVICT_AFTER + 0.1)  # so the oldest may be evicted
        # ThreadingHTTPServer: +200 threads here, one per silent client.
        assert threading.active_count() <= before + 1
        for path in ("/healthz", "/startupz", "/readyz"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code == 200
        assert server.rejected + server.evicted >= 200 - server_module.MAX_CONNECTIONS
    finally:
        for sock in socks:
            sock.close()


def test_connections_beyond_the_cap_are_answered_503_at_once(serve, monkeypatch):
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 60.0)
    monkeypatch.setattr(server_module, "EVICT_AFTER", 60.0)  # nobody is old enough
    _, port, _, _ = serve()
    socks = _slow_clients(port, server_module.MAX_CONNECTIONS)
    try:
        # ThreadingHTTPServer queued it forever (the recv below timed out).
        assert _status(_exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")) == 503
    finally:
        for sock in socks:
            sock.close()


def test_a_slow_head_gets_408(serve, monkeypatch):
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 0.3)
    _, port, _, _ = serve()
    # One byte at a time kept ThreadingHTTPServer's per-read timeout from ever firing.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answer = b""
        for byte in b"GET /healthz HTTP/1.1\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaa":
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                answer += chunk
    assert _status(answer) == 408


LONG_TARGET = b"/" + b"a" * (MAX_TARGET + 10)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
        (b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET " + LONG_TARGET + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz\r\n\r\n", 400),  # HTTP/0.9: no status line came back at all
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b"
         b"\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", 400),
        (b"GET http://h/healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET  /healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-A: \x01\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS hello
    ],
)
def test_malformed_and_oversized_heads_are_refused(serve, raw, status):
    _, port, _, _ = serve()
    answer = _exchange(port, raw)
    assert _status(answer) == status
    assert b'"error"' in answer


def test_head_answers_without_a_body(serve):
    _, port, _, _ = serve()
    answer = _exchange(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert _status(answer) == 200 and answer.endswith(b"\r\n\r\n")


def test_resets_and_half_requests_leave_the_server_serving(serve):
    _, port, _, _ = serve()
    for raw in (b"", b"GET /hea", b"GET /healthz HTTP/1.1\r\n\r\n"):
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if raw:
                sock.sendall(raw)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200


# -- properties: the head parser, then the live server ---------------------------------------

@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=600))
def test_parse_head_on_any_bytes_returns_a_request_or_an_http_error(data):
    try:
        request = parse_head(data)
    except HttpError as error:
        assert 400 <= error.status <= 505
        return
    assert request.method in ("GET", "HEAD")
    assert request.target.startswith("/") and len(request.target) <= MAX_TARGET
    assert len(request.headers) <= MAX_HEADERS


_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-0123456789",
                 min_size=1, max_size=12)


@st.composite
def _heads(draw) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "get", "GET\t", "G ET"]))
    target = draw(st.sampled_from(["/healthz", "/readyz", "/metrics", "/x?y=1", "*", "", "/"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "http/1.1", ""]))
    headers = draw(st.lists(st.tuples(_token, st.text(max_size=20)), max_size=40))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    text = f"{method} {target} {version}{eol}" + "".join(
        f"{n}: {v}{eol}" for n, v in headers) + eol
    data = text.encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(data)))
    return data[:cut] + draw(st.binary(max_size=8)) if draw(st.booleans()) else data


@settings(max_examples=1500, deadline=None)
@given(_heads())
def test_parse_head_on_near_valid_heads(data):
    end = find_head_end(data)
    if end < 0:
        return
    try:
        request = parse_head(data[:end])
    except HttpError as error:
        assert error.status in (400, 405, 414, 431, 505)
        return
    assert request.method in ("GET", "HEAD") and request.version in ("HTTP/1.0", "HTTP/1.1")


_LIVE: dict[int, int] = {}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(_heads(), st.binary(max_size=10_000)))
def test_the_live_server_answers_anything_well_formed_and_keeps_serving(serve, data):
    if id(serve) not in _LIVE:  # one server for all examples of this run
        _LIVE.clear()
        _LIVE[id(serve)] = serve()[1]
    port = _LIVE[id(serve)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    if answer:  # an incomplete head closed by the client gets no answer
        assert answer[:9] == b"HTTP/1.1 " and answer[9:12].isdigit()
        assert b"\r\n\r\n" in answer
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200


def test_the_io_loop_sleeps_while_a_slow_answer_is_computed(serve, monkeypatch):
    # A request handed to a worker kept its head deadline: once past it, the I/O loop
    # polled with a zero timeout until the worker finished (a busy loop).
    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 0.05)
    _, port, server, engine = serve()
    slow = engine.health

    def slow_health(now):
        time.sleep(0.6)
        return slow(now)

    engine.health = slow_health
    before = server.turns
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    assert server.turns - before < 50
