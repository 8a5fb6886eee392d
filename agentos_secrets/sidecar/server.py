"""``--listen``: ``/healthz``, ``/startupz``, ``/readyz``, ``/status`` and ``/metrics``, bounded.

* ``/healthz`` (liveness) fails when the loop stopped turning, an action hangs beyond
  its budget, or a watch died and could not be re-created: a health endpoint that says
  "up" while the watch has been dead for hours (kiwigrid k8s-sidecar issue 621) hides
  exactly the failure that matters.
* ``/readyz``: the baseline is recorded, the watches are up, the action has its target.
* ``/status``: per key, the mounted and applied fingerprints (:mod:`.status`, versioned,
  ``docs/contracts.md``), with the same authentication as ``/metrics``, where the token
  may also come in ``X-AgentOS-Token`` (kube-apiserver deletes the ``Authorization``
  header of a request it authenticated before proxying it to a pod: through
  ``pods/proxy`` only that header reaches us).
* ``/startupz``: the baseline is recorded and the watches are up, target not required:
  for a native sidecar's ``startupProbe`` (the app starts only after it passes, so a
  probe that waits for the app's process would deadlock the pod, kiwigrid issue 432).
* ``/metrics``: Prometheus text. With ``AGENTOS_METRICS_REQUIRE_AUTH`` true (as every
  AgentOS service in ``prod``) it needs ``Authorization: Bearer <AGENTOS_SERVICE_TOKEN>``;
  the token is resolved through the :class:`~agentos_secrets.Loader` on every request (so
  it follows rotations) and checked with ``Loader.verify`` (current, or previous within
  its grace window), in constant time.

Responses carry names, reasons and fingerprints only; never a value or a raw hash.

The port is open to the whole pod network, so the server is bounded: one I/O thread
and :data:`WORKERS` worker threads whatever the number of clients, at most
:data:`MAX_CONNECTIONS` sockets, request heads parsed strictly by :mod:`.httpio` within
:data:`REQUEST_TIMEOUT` seconds. The standard library's ``ThreadingHTTPServer`` it
replaces gave every connection a thread with no cap: a few hundred slow clients pushed
the pod past its memory limit (``python -m benchmarks sidecar_slow_clients``).

Modules: this one is the bounded I/O loop and its workers; the routes are in
``routes`` and the token check in ``auth`` (``MetricsAuth`` is re-exported here).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .auth import MetricsAuth
from .httpio import (
    MAX_HEAD_BYTES,
    HttpError,
    Request,
    error_response,
    find_head_end,
    parse_head,
)
from .routes import _make_router

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Engine
    from .metrics import Metrics

__all__ = ["MetricsAuth", "Server"]

logger = logging.getLogger("agentos_secrets.sidecar")

#: Seconds a client has to send its whole request head (slowloris: 408 after that).
REQUEST_TIMEOUT = 5.0
#: Seconds a client has to take its response.
WRITE_TIMEOUT = 5.0
#: Open connections at once; see :class:`Server` for what happens beyond.
MAX_CONNECTIONS = 64
#: At the cap, a new connection evicts the one that has waited longest for its head if
#: that one is at least this old. 0: always, so a probe (whose head arrives with its
#: connection and is read at once) always gets in, however many slow clients churn.
EVICT_AFTER = 0.0
#: Threads that compute answers (probes, metrics); the I/O thread is one more.
WORKERS = 2
#: Requests waiting for a worker at most (503 beyond).
MAX_QUEUED = 32
#: Seconds the listener is left alone after accept() failed (EMFILE, ENFILE, ENOBUFS):
#: the pending connection keeps it readable, so retrying at once spins the loop.
ACCEPT_PAUSE = 0.25


# -- the server: one I/O thread, a few workers, bounded everything -------------------------


class _Conn:
    __slots__ = ("deadline", "inbuf", "opened", "outbuf", "sock", "state")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.opened = now
        self.deadline = now + REQUEST_TIMEOUT
        self.inbuf = b""
        self.outbuf = b""
        self.state = "reading"  # -> "computing" -> "writing"


def _listen_socket(address: tuple[str, int]) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # [::]:9095 also accepts IPv4, so probes work on IPv6-only and dual-stack pods.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Server:
    """The probe and metrics server: bounded in connections, threads, bytes and time.

    One I/O thread owns every socket (non-blocking, ``selectors``): it reads request heads
    and writes responses, so a slow client costs one socket and at most
    :data:`~.httpio.MAX_HEAD_BYTES` of buffer, never a thread. Complete heads go to
    :data:`WORKERS` threads that compute the answer. Limits:

    * at most :data:`MAX_CONNECTIONS` open connections. A new one beyond that evicts the
      connection that has waited longest for its head (answered 503 and closed): a
      probe sends its head with its connection and is read at once, a slowloris never
      completes one, so probes keep getting through however many slow clients churn.
      When no connection is still sending its head, the new one gets 503 at once;
    * the head must arrive within :data:`REQUEST_TIMEOUT` seconds (408), the response be
      taken within :data:`WRITE_TIMEOUT`;
    * at most :data:`MAX_QUEUED` requests wait for a worker (503 beyond);
    * one request per connection (``Connection: close``).
    """

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        metrics: Metrics,
        auth: MetricsAuth,
        clock: Callable[[], float],
    ) -> None:
        self._route = _make_router(engine, metrics, auth, clock)
        self._listener = _listen_socket(address)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._conns: dict[socket.socket, _Conn] = {}
        self._jobs: queue.Queue[tuple[_Conn, Request] | None] = queue.Queue(MAX_QUEUED)
        self._done: collections.deque[tuple[_Conn, bytes]] = collections.deque()
        self._stopping = False
        #: When accepting resumes after a failed accept() (None: accepting).
        self._accept_resume: float | None = None
        self._accept_failing = False
        self._thread = threading.Thread(target=self._serve, name="sidecar-http", daemon=True)
        self._workers = [
            threading.Thread(target=self._work, name=f"sidecar-http-{i}", daemon=True)
            for i in range(WORKERS)
        ]
        #: Counters for tests and the benchmark: connections refused or evicted at the cap.
        self.rejected = 0
        self.evicted = 0
        #: Turns of the I/O loop (a test checks it sleeps while a worker computes).
        self.turns = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        for worker in self._workers:
            worker.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5)
        for _ in self._workers:
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)
        for conn in list(self._conns.values()):
            self._close(conn)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the I/O thread -------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _serve(self) -> None:
        while not self._stopping:
            self.turns += 1
            now = time.monotonic()
            # Asleep while idle (no timer: the idle benchmark counts wakeups); stop()
            # and the workers wake the loop through the socket pair.
            timeout = min((c.deadline for c in self._conns.values()), default=now + 3600) - now
            if self._accept_resume is not None:
                timeout = min(timeout, self._accept_resume - now)
            try:
                events = self._selector.select(max(0.0, min(timeout, 3600.0)))
            except OSError:  # the selector closed under us (stop)
                return
            for key, mask in events:
                try:
                    self._event(key, mask)
                except Exception as exc:  # noqa: BLE001 - one client must not stop the server
                    logger.warning("probe server: connection failed (%s)", type(exc).__name__)
                    conn = self._conns.get(key.fileobj)  # type: ignore[call-overload]
                    if conn is not None:
                        self._close(conn)
            now = time.monotonic()
            self._expire(now)
            if self._accept_resume is not None and now >= self._accept_resume:
                self._accept_resume = None
                self._selector.register(self._listener, selectors.EVENT_READ, "accept")

    def _event(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "wake":
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
            while self._done:
                conn, payload = self._done.popleft()
                self._start_writing(conn, payload)
            return
        if key.data == "accept":
            self._accept()
            return
        conn = key.data
        if mask & selectors.EVENT_READ and conn.state == "reading":
            self._read(conn)
        if mask & selectors.EVENT_WRITE and conn.state == "writing":
            self._write(conn)

    def _accept(self) -> None:
        for _ in range(64):  # then let the other sockets have a turn
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: leave the listener alone a while
                if not self._accept_failing:  # once per episode, not once per retry
                    logger.warning("probe server: accept failed (%s); retrying every %g s",
                                   exc.strerror or "error", ACCEPT_PAUSE)
                self._accept_failing = True
                self._selector.unregister(self._listener)
                self._accept_resume = time.monotonic() + ACCEPT_PAUSE
                return
            sock.setblocking(False)
            self._accept_failing = False
            now = time.monotonic()
            if len(self._conns) >= MAX_CONNECTIONS and not self._evict_one(now):
                self.rejected += 1
                with contextlib.suppress(OSError):
                    sock.send(error_response(HttpError(503, "too many connections")))
                sock.close()
                continue
            conn = _Conn(sock, now)
            self._conns[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._read(conn)  # the head of a probe is usually there already

    def _evict_one(self, now: float) -> bool:
        oldest: _Conn | None = None
        for conn in self._conns.values():
            if conn.state == "reading" and (oldest is None or conn.opened < oldest.opened):
                oldest = conn
        if oldest is None or now - oldest.opened < EVICT_AFTER:
            return False
        self.evicted += 1
        self._fail(oldest, HttpError(503, "too many connections"))
        return True

    def _read(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not chunk:
            self._close(conn)
            return
        conn.inbuf += chunk
        end = find_head_end(conn.inbuf)
        if end < 0:
            if len(conn.inbuf) >= MAX_HEAD_BYTES:
                self._fail(conn, HttpError(431, "request head too large"))
            return
        try:
            request = parse_head(conn.inbuf[:end])
        except HttpError as error:
            self._fail(conn, error)
            return
        conn.inbuf = b""
        conn.state = "computing"
        conn.deadline = math.inf  # the workers are bounded; the loop must not spin on it
        self._selector.unregister(conn.sock)
        try:
            self._jobs.put_nowait((conn, request))
        except queue.Full:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            self._fail(conn, HttpError(503, "busy"))

    def _fail(self, conn: _Conn, error: HttpError) -> None:
        self._start_writing(conn, error_response(error))

    def _start_writing(self, conn: _Conn, payload: bytes) -> None:
        if conn.sock.fileno() < 0:
            return  # closed meanwhile (expired, or the server stopped)
        conn.state = "writing"
        conn.outbuf = payload
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        key_registered = conn.sock in self._selector.get_map()
        if key_registered:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        else:
            self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.outbuf = conn.outbuf[sent:]
        if not conn.outbuf:
            self._close(conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if conn.state == "reading":
                self._fail(conn, HttpError(408, "request head not received in time"))
                if conn.state == "writing" and conn.outbuf:
                    conn.deadline = now + 1.0  # a short grace to take the 408
            elif conn.state == "writing":
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        # Forgotten last: a connection no longer counted has its descriptor closed.
        self._conns.pop(conn.sock, None)

    # -- the workers ----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping:
                return
            conn, request = job
            try:
                payload = self._route(request)
            except Exception as exc:  # noqa: BLE001 - a failing route is a 500, not a crash
                logger.warning("probe server: %s failed (%s)", request.path[:64],
                               type(exc).__name__)
                payload = error_response(HttpError(500, "internal error"))
            self._done.append((conn, payload))
            self._wake()
