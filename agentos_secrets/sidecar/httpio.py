"""The request head parser and response writer of the probe server: bounded, strict, pure.

:func:`parse_head` takes the bytes of one request head (everything up to and including
the blank line) and returns a :class:`Request`, or raises :class:`HttpError` with the
status to answer. It accepts only what probes and a Prometheus scraper send:

* ``GET`` or ``HEAD`` (405 otherwise), ``HTTP/1.0`` or ``HTTP/1.1`` (505 otherwise);
* an origin-form target (``/path?query``) of at most :data:`MAX_TARGET` printable ASCII
  characters (414 when longer);
* at most :data:`MAX_HEADERS` header lines (431), each ``token: value`` with no control
  characters, no obsolete line folding, no repeated ``Authorization``;
* no body: a ``Content-Length`` other than 0, or any ``Transfer-Encoding``, is refused
  (400), so nothing beyond the head is ever read.

The head as a whole is capped by the server (:data:`MAX_HEAD_BYTES`, 431) before it gets
here. Error texts are fixed strings: nothing the client sent is ever echoed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_TARGET",
    "HttpError",
    "Request",
    "find_head_end",
    "parse_head",
    "response",
]

MAX_HEAD_BYTES = 8192
MAX_HEADERS = 32
MAX_TARGET = 2048

_METHOD_RE = re.compile(rb"[A-Z]{1,16}")
_TARGET_RE = re.compile(rb"/[!-~]*")
_TOKEN_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_VALUE_RE = re.compile(rb"[\t -~\x80-\xff]*")

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """The request cannot be served; ``status`` is the answer, ``reason`` a fixed text."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Headers:
    """Request headers by lower-case name (``get`` is case-insensitive, first value)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self._items if n == name.lower())

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: Headers = field(repr=False)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


def find_head_end(buffer: bytes) -> int:
    """The length of the head in ``buffer`` (up to the blank line), or -1 if incomplete."""
    # The first blank line ends the head, whichever line ends it uses: bare LF, as
    # HTTP/1.1 allows a server to accept, or CRLF (a pipelined request after a bare-LF
    # head must not be read as part of it).
    ends = [i + 2 for i in (buffer.find(b"\n\n"),) if i >= 0]
    ends += [i + 4 for i in (buffer.find(b"\r\n\r\n"),) if i >= 0]
    ends += [i + 3 for i in (buffer.find(b"\n\r\n"),) if i >= 0]
    return min(ends, default=-1)


def parse_head(head: bytes) -> Request:
    """Parse one complete request head; :class:`HttpError` when it is not acceptable."""
    if len(head) > MAX_HEAD_BYTES:
        raise HttpError(431, "request head too large")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise HttpError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _METHOD_RE.fullmatch(method):
        raise HttpError(400, "malformed method")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        if re.fullmatch(rb"HTTP/[0-9]\.[0-9]", version):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HttpError(400, "malformed request line")
    if len(target) > MAX_TARGET:
        raise HttpError(414, "target too long")
    if not _TARGET_RE.fullmatch(target):
        raise HttpError(400, "the target must be a path")
    if method not in (b"GET", b"HEAD"):
        raise HttpError(405, "only GET and HEAD are served")
    header_lines = lines[1:]
    if len(header_lines) > MAX_HEADERS:
        raise HttpError(431, "too many header lines")
    items: list[tuple[str, str]] = []
    for line in header_lines:
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete line folding")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise HttpError(400, "malformed header line")
        value = value.strip(b" \t")
        if not _VALUE_RE.fullmatch(value):
            raise HttpError(400, "control character in a header")
        items.append((name.decode("ascii").lower(), value.decode("latin-1")))
    headers = Headers(items)
    if headers.count("authorization") > 1 or headers.count("content-length") > 1:
        raise HttpError(400, "repeated header")
    if headers.get("transfer-encoding") is not None:
        raise HttpError(400, "a GET carries no body")
    length = headers.get("content-length")
    if length is not None and length.strip() != "0":
        raise HttpError(400, "a GET carries no body")
    return Request(method.decode("ascii"), target.decode("ascii"), version.decode("ascii"),
                   headers)


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    *,
    head_only: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """One complete HTTP/1.1 response; the connection closes after it."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def error_response(error: HttpError, *, head_only: bool = False) -> bytes:
    """The JSON answer to an :class:`HttpError` (a fixed text, never client input)."""
    body = ('{"status":"error","error":"' + error.reason + '"}').encode()
    extra = (("Allow", "GET, HEAD"),) if error.status == 405 else ()
    return response(error.status, body, head_only=head_only, extra=extra)
