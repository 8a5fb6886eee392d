"""Reading an HTTP response body within a size and a time budget.

``httpx.Client.request`` reads the whole body into memory, decompressing it, with a
timeout per read only: a reload endpoint (or anything answering in its place) sending an
endless, slowly dripped or gzip-bombed body held the action, and its memory, without
bound. Actions stream instead, ask for ``identity`` encoding and read the raw bytes
through :func:`read_body`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import httpx

__all__ = ["IDENTITY", "read_body"]

#: Request headers asking for an uncompressed body (no decompression bomb).
IDENTITY = {"Accept-Encoding": "identity"}


def read_body(response: httpx.Response, *, limit: int, seconds: float) -> bytes | None:
    """At most ``limit`` raw bytes of a streamed response, read within ``seconds``.

    None when the body is longer or slower than that (the caller decides what that
    means); the response is left to the caller's ``with`` block to close.
    """
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_raw():
        total += len(chunk)
        if total > limit or time.monotonic() > deadline:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
