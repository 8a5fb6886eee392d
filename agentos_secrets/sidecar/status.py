"""``GET /status``: what this pod has, per key, as a versioned JSON document.

The document (``docs/contracts.md``, "GET /status") holds names, indexes, fingerprints,
reason codes and times: never a value, a raw hash or a watched path. It is bounded:
at most :data:`~.keys.MAX_KEYS` keys (then ``"truncated": true``), key names over
:data:`~.keys.MAX_NAME_CHARS` characters or not valid UTF-8 are left out (and counted as
truncated), and the action's error is cut to a short reason.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from .keys import MAX_NAME_CHARS, listable

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Engine

__all__ = [
    "MAX_NAME_CHARS",
    "TOKEN_HEADER",
    "VERSION",
    "document",
    "listable",
    "pod_name",
    "unauthorized",
]

VERSION = 1
#: The header that carries the token through kube-apiserver's pod proxy, which deletes
#: ``Authorization`` (accepted by ``/status`` and ``/metrics``).
TOKEN_HEADER = "X-AgentOS-Token"  # noqa: S105 - a header name, not a token
_MAX_ERROR_CHARS = 200
_MAX_POD_CHARS = 253


def pod_name() -> str:
    """``POD_NAME`` (the manifests set it from the downward API), else the host name."""
    name = os.environ.get("POD_NAME", "").strip() or socket.gethostname()
    return name[:_MAX_POD_CHARS]


def _rfc3339(wall: float | None) -> str | None:
    if wall is None:
        return None
    # time, not datetime: the sidecar's memory budget (30 MiB) has no room to spare.
    micros = round(wall % 1 * 1e6)
    if micros == 1_000_000:
        wall, micros = wall + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{micros:06d}Z"


def _short(error: str | None) -> str | None:
    if error is None:
        return None
    from .logs import redact

    error = redact(error)
    return error if len(error) <= _MAX_ERROR_CHARS else error[: _MAX_ERROR_CHARS - 3] + "..."


def document(engine: Engine, now: float, *, pod: str) -> dict[str, Any]:
    """The ``/status`` body (version 1) for ``engine`` at monotonic time ``now``."""
    ready, _details = engine.readiness(now)
    pending = engine.pending
    keys, truncated = engine.keys.snapshot()
    listed: list[dict[str, Any]] = []
    for key in keys:
        if not listable(key.name):
            truncated = True
            continue
        listed.append({
            "name": key.name,
            "watch": key.watch,
            "mounted": key.mounted,
            "applied": key.applied,
            "pending": pending and key.mounted != key.applied,
            "reason": key.reason,
        })
    return {
        "version": VERSION,
        "pod": pod,
        "action": engine.action.kind,
        "ready": ready,
        "keys": listed,
        "truncated": truncated,
        "pending": pending,
        "last_action": {
            "result": engine.last_result,
            "at": _rfc3339(engine.last_at),
            "attempts": engine.last_attempts,
            "error": _short(engine.last_error) if engine.last_result == "failed" else None,
        },
    }


def unauthorized() -> dict[str, Any]:
    return {"version": VERSION, "error": "unauthorized"}
