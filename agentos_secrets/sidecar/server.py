"""``--listen``: ``/healthz``, ``/readyz`` and ``/metrics`` on a small threaded server.

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
* ``/metrics``: Prometheus text. With ``AGENTOS_METRICS_REQUIRE_AUTH=1`` (as every AgentOS
  service in ``prod``) it needs ``Authorization: Bearer <AGENTOS_SERVICE_TOKEN>``; the
  token is resolved through the :class:`~agentos_secrets.Loader` on every request (so it
  follows rotations) and checked with ``Loader.verify`` (current, or previous within its
  grace window), in constant time.

Responses carry names, reasons and fingerprints only; never a value or a raw hash.
The standard library server keeps the image small; one thread per request is plenty
for probes and a scraper.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from ..booleans import BooleanSettingError, parse_bool
from ..errors import SecretError

if TYPE_CHECKING:  # pragma: no cover
    from ..loader import Loader
    from .loop import Engine
    from .metrics import Metrics

__all__ = ["MetricsAuth", "Server"]

logger = logging.getLogger("agentos_secrets.sidecar")

TOKEN_NAME = "AGENTOS_SERVICE_TOKEN"  # noqa: S105 - a variable name, not a token
REQUIRE_AUTH = "AGENTOS_METRICS_REQUIRE_AUTH"

#: Seconds a connection may stay silent before it is closed. Each connection holds a
#: thread, and the port is open to the cluster: idle ones must not pile up.
REQUEST_TIMEOUT = 10.0


class MetricsAuth:
    """Bearer-token check for ``/metrics`` when ``AGENTOS_METRICS_REQUIRE_AUTH=1``.

    ``secret_dirs`` (the sidecar passes its watched directories) are the Loader's secret
    directories, as the rotation runbook asks of every receiver: a key
    ``AGENTOS_SERVICE_TOKEN_PREVIOUS`` staged in the Secret is then accepted too, so a
    scraper switched to the new token before this pod's volume is updated is not refused.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        loader: Loader | None = None,
        *,
        secret_dirs: Sequence[str] = (),
    ) -> None:
        #: Set when ``AGENTOS_METRICS_REQUIRE_AUTH`` holds a word that is not a boolean:
        #: auth is then required (fail closed), the sidecar warns and counts it.
        self.setting_problem: str | None = None
        try:
            self.required = parse_bool(
                REQUIRE_AUTH, env.get(REQUIRE_AUTH), default=False
            )
        except BooleanSettingError as exc:
            self.required = True
            self.setting_problem = str(exc)
            logger.warning("metrics auth is required: %s; fix the setting", exc)
        self._env = env
        self._secret_dirs = tuple(secret_dirs)
        self._loader = loader
        self.problem: str | None = None

    def _get_loader(self) -> Loader:
        if self._loader is None:
            from ..loader import Loader

            self._loader = Loader(env=self._env, secret_dirs=self._secret_dirs)
        return self._loader

    def allowed(self, authorization: str | None, token_header: str | None = None) -> bool:
        """Whether a request may read ``/metrics`` or ``/status``: auth is off, or
        ``X-AgentOS-Token: <token>`` (``token_header``) or ``Authorization: Bearer
        <token>`` holds a token ``Loader.verify`` accepts. When both are sent, the
        ``X-AgentOS-Token`` header is the one checked."""
        if not self.required:
            return True
        token = (token_header or "").strip()
        if not token and authorization:
            scheme, _, bearer = authorization.partition(" ")
            token = bearer.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return False
        loader = self._get_loader()
        try:
            ok = loader.verify(TOKEN_NAME, token) is not None
        except SecretError as exc:
            # Misconfigured (no token, unreadable file): deny, and say why in the logs.
            if self.problem != str(exc):
                self.problem = str(exc)
                logger.warning("metrics auth cannot resolve %s: %s", TOKEN_NAME, exc)
            return False
        self.problem = None
        return ok


def _make_handler(
    engine: Engine, metrics: Metrics, auth: MetricsAuth, clock: Callable[[], float]
) -> type[BaseHTTPRequestHandler]:
    from . import status

    pod = status.pod_name()

    class Handler(BaseHTTPRequestHandler):
        server_version = "agentos-secrets-sidecar"
        sys_version = ""
        timeout = REQUEST_TIMEOUT

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the useful lines

        def _authorized(self) -> bool:
            allowed = auth.allowed(
                self.headers.get("Authorization"), self.headers.get(status.TOKEN_HEADER)
            )
            problem = auth.problem or auth.setting_problem
            metrics.set_warning("metrics_auth", 1 if problem else 0)
            return allowed

        def _send(
            self, code: int, body: bytes, content_type: str, *, authenticate: bool = False
        ) -> None:
            self.send_response(code)
            if authenticate:
                self.send_header("WWW-Authenticate", 'Bearer realm="metrics"')
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, ok: bool, details: dict[str, object]) -> None:
            body = json.dumps({"status": "ok" if ok else "fail", **details}).encode()
            self._send(200 if ok else 503, body, "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(*engine.health(clock()))
            elif path == "/readyz":
                self._json(*engine.readiness(clock()))
            elif path == "/startupz":
                self._json(*engine.startup(clock()))
            elif path == "/status":
                if not self._authorized():
                    body = json.dumps(status.unauthorized()).encode()
                    self._send(401, body, "application/json", authenticate=True)
                    return
                body = json.dumps(status.document(engine, clock(), pod=pod)).encode()
                self._send(200, body, "application/json")
            elif path == "/metrics":
                if not self._authorized():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="metrics"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                # Refresh the gauges the probes set (watches_up, ready): the manifests
                # have no readinessProbe, so nothing else would ever update `ready`.
                engine.health(clock())
                engine.readiness(clock())
                body, content_type = metrics.render()
                self._send(200, body, content_type)
            else:
                self._send(404, b'{"status":"not found"}', "application/json")

        do_HEAD = do_GET

    return Handler


class _DualStackServer(ThreadingHTTPServer):
    """An IPv6 listener (``--listen [::]:9095``) that also accepts IPv4 connections, so
    probes work on IPv6-only and dual-stack pods alike."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Server:
    """The probe and metrics server on its own daemon thread."""

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        metrics: Metrics,
        auth: MetricsAuth,
        clock: Callable[[], float],
    ) -> None:
        server_class = _DualStackServer if ":" in address[0] else ThreadingHTTPServer
        self.httpd = server_class(address, _make_handler(engine, metrics, auth, clock))
        self.httpd.daemon_threads = True
        # serve_forever() polls its shutdown flag every poll_interval; a long interval
        # keeps an idle sidecar asleep, and stop() wakes it with a connection instead.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 3600},
            name="sidecar-http", daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            stopper = threading.Thread(target=self.httpd.shutdown, daemon=True)
            stopper.start()
            host, port = self.address
            if host in ("0.0.0.0", ""):  # noqa: S104 - connect to our own socket
                host = "127.0.0.1"
            elif host == "::":
                host = "::1"
            while stopper.is_alive():
                try:
                    socket.create_connection((host, port), timeout=1).close()
                except OSError:
                    break
                stopper.join(0.2)
        self.httpd.server_close()
