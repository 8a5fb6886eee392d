"""The probe server's routes: a parsed request in, the complete response bytes out.

``/healthz``, ``/readyz`` and ``/startupz`` answer the loop's probes as JSON (200 or
503); ``/status`` (the versioned per-key document of :mod:`.status`) and ``/metrics``
(Prometheus text, with the probe gauges refreshed first) need what
:class:`~.auth.MetricsAuth` allows, else 401 with a ``WWW-Authenticate`` challenge;
anything else is 404. Responses carry names, reasons and fingerprints only.

Kept apart from the I/O loop (``server``), which runs this function on its worker
threads and knows nothing of what the paths mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from .httpio import Request, response

if TYPE_CHECKING:  # pragma: no cover
    from .auth import MetricsAuth
    from .loop import Engine
    from .metrics import Metrics

__all__: list[str] = []


def _make_router(
    engine: Engine, metrics: Metrics, auth: MetricsAuth, clock: Callable[[], float]
) -> Callable[[Request], bytes]:
    """The routes: one function from a parsed request to the complete response bytes."""
    from . import status

    pod = status.pod_name()
    challenge = (("WWW-Authenticate", 'Bearer realm="metrics"'),)

    def json_answer(request: Request, ok: bool, details: dict[str, object]) -> bytes:
        body = json.dumps({"status": "ok" if ok else "fail", **details}).encode()
        return response(200 if ok else 503, body, head_only=request.method == "HEAD")

    def authorized(request: Request) -> bool:
        allowed = auth.allowed(
            request.headers.get("Authorization"), request.headers.get(status.TOKEN_HEADER)
        )
        metrics.set_warning("metrics_auth", 1 if auth.problem else 0)
        return allowed

    def route(request: Request) -> bytes:
        path = request.path
        head_only = request.method == "HEAD"
        if path == "/healthz":
            return json_answer(request, *engine.health(clock()))
        if path == "/readyz":
            return json_answer(request, *engine.readiness(clock()))
        if path == "/startupz":
            return json_answer(request, *engine.startup(clock()))
        if path == "/status":
            if not authorized(request):
                body = json.dumps(status.unauthorized()).encode()
                return response(401, body, head_only=head_only, extra=challenge)
            body = json.dumps(status.document(engine, clock(), pod=pod)).encode()
            return response(200, body, head_only=head_only)
        if path == "/metrics":
            if not authorized(request):
                return response(401, b"", head_only=head_only, extra=challenge)
            # Refresh the gauges the probes set (watches_up, ready): the manifests
            # have no readinessProbe, so nothing else would ever update `ready`.
            engine.health(clock())
            engine.readiness(clock())
            body, content_type = metrics.render()
            return response(200, body, content_type, head_only=head_only)
        return response(404, b'{"status":"not found"}', head_only=head_only)

    return route
