"""Signing and verifying the sidecar's reload requests (``--hmac-key-file``).

The sidecar's ``http`` action can sign each request so that the app's reload endpoint
only obeys its own sidecar. The header is::

    X-AgentOS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>

The timestamp is inside the MAC, and :func:`verify_signature` refuses one older (or
newer) than ``tolerance`` seconds, so a captured request cannot be replayed later. Apps
pass the current key and, during a rotation of the key itself, the previous one.
Comparison is constant-time. Nothing here logs or raises with key material.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from .secret import Secret, _encode

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-AgentOS-Signature"
DEFAULT_TOLERANCE = 300

KeyLike = str | bytes | Secret


def _key_bytes(key: KeyLike) -> bytes:
    if isinstance(key, Secret):
        return key.reveal_bytes()
    if isinstance(key, str):
        return _encode(key)  # a lone surrogate: a ValueError that does not carry the key
    if isinstance(key, bytes | bytearray):
        return bytes(key)
    raise TypeError("a signing key must be str, bytes or Secret")


def _mac(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(key: KeyLike, body: bytes, *, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed with ``key`` at ``timestamp`` (default now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={_mac(_key_bytes(key), ts, body)}"


def _parse(header: str) -> tuple[int, list[str]] | None:
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if not value.isdigit() or len(value) > 12:
                return None
            timestamp = int(value)
        elif name == "v1":
            macs.append(value.lower())
    if timestamp is None or not macs:
        return None
    return timestamp, macs


def verify_signature(
    keys: KeyLike | Iterable[KeyLike],
    header: str | None,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid, fresh signature of ``body`` by one of ``keys``.

    ``keys``: one key, or several (current and previous) during a key rotation.
    A missing or malformed header, a stale timestamp or a wrong MAC give False.
    """
    if not header:
        return False
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, macs = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    candidates = [keys] if isinstance(keys, str | bytes | bytearray | Secret) else list(keys)
    ok = False
    for key in candidates:
        expected = _mac(_key_bytes(key), timestamp, body)
        for mac in macs:
            # No early exit: the time taken does not say which key matched.
            ok |= hmac.compare_digest(expected, mac)
    return ok
