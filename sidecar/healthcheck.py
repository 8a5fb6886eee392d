"""The image's HEALTHCHECK: exit 0 when the sidecar's ``/healthz`` answers 200, else 1.

Docker and podman run it inside the container (Kubernetes ignores HEALTHCHECK and uses
the livenessProbe). It asks the address the sidecar listens on, read from
``AGENTOS_SIDECAR_LISTEN`` as the sidecar reads it, so a container given another port
(``-e AGENTOS_SIDECAR_LISTEN=127.0.0.1:9100``, e.g. with host networking) is not reported
unhealthy while it is fine; an unspecified address (``0.0.0.0``, ``[::]``) is asked on
loopback. A port given as ``--listen`` on the command line is not seen: set the variable.
Standard library only; ``http.client`` uses no proxy from the environment; 2 s budget.
"""

from __future__ import annotations

import http.client
import os
import sys

DEFAULT_LISTEN = "0.0.0.0:9095"
_UNSPECIFIED = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def target(listen: str) -> tuple[str, int]:
    """The (host, port) to ask for a ``--listen`` value; ValueError when it has no port."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("AGENTOS_SIDECAR_LISTEN has no port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return _UNSPECIFIED.get(host, host), int(port)


def main() -> int:
    try:
        host, port = target(os.environ.get("AGENTOS_SIDECAR_LISTEN", DEFAULT_LISTEN))
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return 0 if conn.getresponse().status == 200 else 1
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return 1


if __name__ == "__main__":
    sys.exit(main())
