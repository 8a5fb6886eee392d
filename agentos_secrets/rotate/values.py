"""The new value of a rotation: generated here, or read from a file or stdin.

There is no flag that takes a value: a value on the command line is visible to every
user of the machine (``ps``, ``/proc/PID/cmdline``) and lands in shell history.

``--generate`` draws from :mod:`secrets` (the operating system's CSPRNG). The default is
32 random bytes written as URL-safe base64 without padding (43 characters): 256 bits is
beyond any guessing, and that alphabet (``A-Z a-z 0-9 - _``) survives HTTP headers,
environment variables, YAML, URLs and shell quoting without escaping, so the value
never gets mangled on its way into a config. ``--alphabet`` and ``--length`` give a
value of exactly ``length`` characters drawn uniformly (``secrets.choice``) from the
alphabet instead, for issuers with rules of their own.

A value read from a file or stdin goes through the Loader's own validation
(:func:`agentos_secrets.files.decode_secret`: strict UTF-8, no NUL, not empty, trimmed
like the Loader reads a mounted file), so the fingerprint computed here is the one every
sidecar reports for it.
"""

from __future__ import annotations

import os
import sys

from ..errors import SecretError
from ..files import DEFAULT_MAX_BYTES, decode_secret, read_secret_file, read_stream_bounded
from ..secret import Secret

#: Seconds stdin may take to reach its end: a pipe that never closes must not hang rotate.
STDIN_TIMEOUT = 120.0

__all__ = ["ALPHABETS", "ValueInputError", "generate", "read_value"]

ALPHABETS = {
    "urlsafe": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "alnum": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "hex": "0123456789abcdef",
}
MIN_BITS = 128
MAX_LENGTH = 4096


class ValueInputError(Exception):
    """The new value could not be produced; the message names the flag, never the value."""


def generate(*, length: int | None = None, alphabet: str | None = None) -> Secret:
    """A fresh random value: 32 bytes URL-safe base64 by default (see the module doc)."""
    import math
    import secrets

    if alphabet is None and length is None:
        return Secret(secrets.token_urlsafe(32), name="generated")
    chars = ALPHABETS.get(alphabet or "urlsafe", alphabet or "")
    if len(set(chars)) != len(chars) or len(chars) < 2:
        raise ValueInputError(
            "--alphabet: give a name (" + ", ".join(ALPHABETS) + ") or at least two"
            " distinct characters"
        )
    if any(not 33 <= ord(c) <= 126 for c in chars):
        # A value must travel in HTTP headers (a token in X-AgentOS-Token, Authorization)
        # and environment variables unchanged: visible ASCII only.
        raise ValueInputError("--alphabet: only visible ASCII characters (no whitespace,"
                              " control or non-ASCII characters)")
    size = length if length is not None else math.ceil(256 / math.log2(len(chars)))
    if not 1 <= size <= MAX_LENGTH:
        raise ValueInputError(f"--length: must be between 1 and {MAX_LENGTH}")
    bits = size * math.log2(len(chars))
    if bits < MIN_BITS:
        raise ValueInputError(
            f"--length: {size} characters of a {len(chars)}-character alphabet give"
            f" {bits:.0f} bits; at least {MIN_BITS} are required"
        )
    return Secret("".join(secrets.choice(chars) for _ in range(size)), name="generated")


def read_value(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Secret:
    """The value in ``path`` (``-`` is stdin), validated like the Loader reads a file."""
    if path == "-":
        return _read_stdin(max_bytes)
    absolute = os.path.abspath(path)
    try:
        data, _ = read_secret_file(absolute, variable="--from-file", max_bytes=max_bytes)
    except SecretError as exc:
        message = str(exc)
    else:
        return Secret(data, name="from-file")
    if not os.path.isabs(path):
        # A relative "path" may be the value typed in the wrong place: like the Loader
        # for NAME_FILE, never print it back (the absolute form contains it as well).
        message = message.replace(absolute, "the relative path given, not shown in case it"
                                  " is the value itself")
    raise ValueInputError(message)


def _read_stdin(max_bytes: int) -> Secret:
    if sys.stdin is None or sys.stdin.isatty():
        raise ValueInputError(
            "--from-file -: stdin is a terminal; pipe the value in (it is never echoed)"
        )
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1  # replaced in-process (tests, embedding): read its buffer, capped
    try:
        if fd < 0:
            data = sys.stdin.buffer.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ValueInputError(f"--from-file -: stdin holds more than {max_bytes} bytes")
        else:
            data = read_stream_bounded(
                fd, what="--from-file - (stdin)", max_bytes=max_bytes, timeout=STDIN_TIMEOUT
            )
        value = decode_secret(data, variable="--from-file -", path=None)
    except SecretError as exc:
        message = str(exc)
    else:
        return Secret(value, name="stdin")
    raise ValueInputError(message)
