"""Bounded reading of everything ``check`` is given: files, stdin, and how paths are shown.

Every input is read through one of these functions, so each is capped in size and none
can block: files go through :func:`agentos_secrets.files.read_bounded` (no wait on a FIFO,
no growth on ``/dev/zero``, regular files only); stdin is read up to the same cap and
within a time limit. A refusal is an :class:`~.errors.InputError` naming the flag and the
path as :func:`shown_argument` shows it, never the content.
"""

from __future__ import annotations

import os
import sys

from ..files import HIDDEN_PATH
from .errors import InputError

__all__ = [
    "MAX_ENV_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "STDIN_TIMEOUT",
    "decode",
    "read_file",
    "read_stdin",
    "shown_argument",
]

#: An env file is a few dozen lines; 256 KiB leaves room for comments and PEM keys.
MAX_ENV_FILE_BYTES = 256 << 10
#: Rendered manifests of a large application are a few MiB; 16 MiB parses in seconds.
MAX_MANIFEST_BYTES = 16 << 20
#: How long ``--manifests -`` waits for stdin to reach its end.
STDIN_TIMEOUT = 120.0


def shown_argument(path: str) -> str:
    """A path given on the command line (or in the environment), as messages show it.

    The same rule as :func:`agentos_secrets.files.shown_path`, relaxed for what exists:
    an absolute path, or one that names an existing entry, is shown; anything else is
    hidden, since a value that names nothing may be a secret typed in the wrong place
    (``--env-file "$TOKEN"``).
    """
    if path.startswith("/"):
        return path
    try:
        exists = bool(path) and "\0" not in path and os.path.lexists(path)
    except (OSError, ValueError):
        exists = False
    return path if exists else HIDDEN_PATH


def decode(data: bytes, what: str) -> str:
    """Strict UTF-8 (a leading byte-order mark dropped); an InputError naming ``what``.

    Raised outside the ``except`` block: a UnicodeDecodeError holds the whole content
    (``.object``), secrets included, and must not travel along as ``__context__``.
    """
    offset = -1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start
    if offset >= 0:
        raise InputError(f"{what}: is not UTF-8 (first bad byte at offset {offset})")
    return text.removeprefix("\ufeff")


def read_file(path: str, option: str, max_bytes: int) -> str:
    """The UTF-8 text of the file ``option`` names; an InputError when it cannot be used.

    A relative path is resolved against the working directory (legitimate on a command
    line) but shown as given.
    """
    from ..errors import SecretFileError, SecretFileTooLargeError

    shown = shown_argument(path)
    failure: str | None = None
    target = os.path.abspath(path) if path and "\0" not in path else path
    try:
        data = _read_bounded(target, option, max_bytes)
    except SecretFileTooLargeError:
        failure = f"is larger than the limit of {max_bytes} bytes"
    except SecretFileError as exc:
        reason = str(exc).removeprefix(f"{option} ({target}): ")
        failure = reason if reason != str(exc) else "cannot be read"
    if failure is not None:
        raise InputError(f"{option} {shown}: {failure}")
    return decode(data, f"{option} {shown}")


def _read_bounded(path: str, option: str, max_bytes: int) -> bytes:
    from ..files import read_bounded

    return read_bounded(path, what=option, max_bytes=max_bytes)


def read_stdin(option: str, max_bytes: int, *, timeout: float = STDIN_TIMEOUT) -> str:
    """Standard input as UTF-8 text, at most ``max_bytes``, within ``timeout`` seconds.

    A terminal is refused at once (a forgotten pipe would wait for typing forever), a
    stream that outgrows the cap (``< /dev/zero``) or stalls is refused as it happens.
    """
    where = f"{option} - (stdin)"
    stream = sys.stdin
    if stream is None:
        raise InputError(f"{where}: there is no standard input")
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1  # replaced in-process (tests, embedding): read it as a text stream
    if fd < 0:
        text = stream.read(max_bytes + 1)
        if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise InputError(f"{where}: is larger than the limit of {max_bytes} bytes")
        return text.removeprefix("\ufeff")
    if os.isatty(fd):
        raise InputError(f"{where}: is a terminal; pipe the YAML in (or give a file)")
    return decode(_read_fd(fd, where, max_bytes, timeout), where)


def _read_fd(fd: int, where: str, max_bytes: int, timeout: float) -> bytes:
    from ..errors import SecretError
    from ..files import read_stream_bounded

    try:
        return read_stream_bounded(fd, what=where, max_bytes=max_bytes, timeout=timeout)
    except SecretError as exc:
        message = str(exc)  # the message names the stream only, never its content
    raise InputError(message)
