"""Reading one secret file safely, and the kubelet's Secret-volume layout.

``read_secret_file`` opens without blocking (a FIFO fails at once), checks the *opened*
file with ``fstat`` (so a path swapped between check and read cannot fool it), caps the
size, and validates the content. Every error names the variable and the path, never the
content.

A kubelet Secret volume (``pkg/volume/util/atomic_writer.go``) looks like::

    DIR/..2026_11_26_14_02_11.123456789/KEY   the files of the current generation
    DIR/..data -> ..2026_11_26_14_02_11.123456789
    DIR/KEY -> ..data/KEY

An update writes a new generation, renames ``..data_tmp`` over ``..data`` (one atomic
switch for every key), fixes the per-key symlinks, then deletes the old generation.
Entries whose name starts with a dot are never keys.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import (
    SecretEncodingError,
    SecretFileError,
    SecretFileInsecureError,
    SecretFileNotFoundError,
    SecretFileNotRegularError,
    SecretFilePermissionError,
    SecretFileTooLargeError,
    SecretPathError,
    SecretValueError,
)

__all__ = [
    "DATA_LINK",
    "DEFAULT_MAX_BYTES",
    "FileIdentity",
    "current_generation",
    "decode_secret",
    "file_identity",
    "is_kubelet_volume",
    "iter_keys",
    "read_secret_file",
    "shown_path",
    "volume_of",
]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import cost)
if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_MAX_BYTES = 64 * 1024
DATA_LINK = "..data"

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class FileIdentity(tuple[int, int, int, int]):
    """What one ``os.stat`` (following links) says about a file's version.

    On a kubelet volume every rotation gives the key a new inode and mtime; a write in
    place changes mtime and usually size. A tuple subclass rather than a dataclass: the
    cache compares one of these on every ``get()``, and tuple equality runs in C (and
    ``dataclasses`` alone would add several milliseconds to ``import agentos_secrets``).
    """

    __slots__ = ()

    def __new__(cls, dev: int, ino: int, mtime_ns: int, size: int) -> FileIdentity:
        return tuple.__new__(cls, (dev, ino, mtime_ns, size))

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return tuple.__new__(cls, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))

    @property
    def dev(self) -> int:
        return self[0]

    @property
    def ino(self) -> int:
        return self[1]

    @property
    def mtime_ns(self) -> int:
        return self[2]

    @property
    def size(self) -> int:
        return self[3]

    def __repr__(self) -> str:
        return f"FileIdentity(dev={self[0]}, ino={self[1]}, mtime_ns={self[2]}, size={self[3]})"


def file_identity(path: str) -> FileIdentity | None:
    """The identity of ``path`` (following links), or None when it does not exist."""
    try:
        return FileIdentity.of(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


#: Shown instead of a ``NAME_FILE`` value that is not an absolute path.
HIDDEN_PATH = "<not an absolute path; not shown>"


def shown_path(path: str) -> str:
    """``path`` as messages may show it: absolute paths as they are, others hidden.

    A ``NAME_FILE`` whose value is not an absolute path is most often the secret itself,
    set in ``NAME_FILE`` instead of ``NAME``: echoing it would log the secret.
    """
    return path if path.startswith("/") else HIDDEN_PATH


def _where(variable: str | None, path: str) -> str:
    return f"{variable} ({path})" if variable else path


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _open_error(exc: OSError, variable: str | None, path: str) -> SecretFileError:
    where = _where(variable, path)
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(path):
            return SecretFileNotFoundError(
                f"{where}: is a dangling symlink (its target does not exist)",
                variable=variable,
                path=path,
            )
        return SecretFileNotFoundError(
            f"{where}: no such file", variable=variable, path=path
        )
    if isinstance(exc, PermissionError):
        return SecretFilePermissionError(
            f"{where}: permission denied (the process may not read it)",
            variable=variable,
            path=path,
        )
    if exc.errno == errno.ELOOP:
        return SecretFileNotFoundError(
            f"{where}: too many levels of symlinks", variable=variable, path=path
        )
    if isinstance(exc, NotADirectoryError):
        return SecretFileNotFoundError(
            f"{where}: a parent of the path is not a directory", variable=variable, path=path
        )
    if exc.errno == errno.ENXIO:
        return SecretFileNotRegularError(
            f"{where}: is a socket or device without a reader", variable=variable, path=path
        )
    return SecretFileError(
        f"{where}: cannot open ({exc.strerror or type(exc).__name__})",
        variable=variable,
        path=path,
    )


def decode_secret(
    data: bytes, *, variable: str | None, path: str | None, strip: bool = True
) -> bytes:
    """Validate content: strict UTF-8, no NUL, not empty; trimmed unless ``strip=False``.

    Returns the bytes to keep. ``path`` is None for values that did not come from a file.
    """
    leading = 0
    if strip:
        # ASCII whitespace goes at C speed; the rarer Unicode whitespace (NBSP, ...) below.
        # Stripping whitespace first changes nothing else: it is neither NUL nor bad UTF-8.
        stripped = data.strip()
        if len(stripped) != len(data):
            leading = len(data) - len(data.lstrip())
            data = stripped
    if b"\0" in data:
        raise SecretValueError(
            f"{_what(variable, path)}: contains a NUL byte", variable=variable, path=path
        )
    bad_offset = -1
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        bad_offset = exc.start
    if bad_offset >= 0:
        # Raised outside the except block: the UnicodeDecodeError holds the whole content
        # (``.object``) and must not travel along as ``__context__``.
        raise SecretEncodingError(
            f"{_what(variable, path)}: is not valid UTF-8 (first bad byte at offset"
            f" {bad_offset + leading})",
            variable=variable,
            path=path,
        )
    if strip and text and (text[0].isspace() or text[-1].isspace()):
        text = text.strip()
        data = text.encode("utf-8")
    if not data:
        raise SecretValueError(
            f"{_what(variable, path)}: is empty" + (" (or whitespace only)" if strip else ""),
            variable=variable,
            path=path,
        )
    return data


def _what(variable: str | None, path: str | None) -> str:
    return _where(variable, path) if path else (variable or "secret")


def _read_capped(fd: int, size: int, max_bytes: int, variable: str | None, path: str) -> bytes:
    """Read at most ``max_bytes`` from ``fd``; more is a SecretFileTooLargeError.

    ``size`` is what fstat reported. The first read asks for one byte more than that:
    when exactly ``size`` bytes come back the file is complete, in one system call and
    with no 64 KiB buffer to allocate. A shorter read (FUSE, NFS) just reads on, and a
    file reporting 0 (procfs) or growing while read is read in pages up to the cap.
    """
    limit = max_bytes + 1
    want = size + 1 if size else 4096
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        try:
            chunk = os.read(fd, min(want, limit - total))
        except BlockingIOError:
            break
        except OSError as exc:
            raise SecretFileError(
                f"{_where(variable, path)}: read failed ({exc.strerror or type(exc).__name__})",
                variable=variable,
                path=path,
            ) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total == size:
            break
        want = 65536
    if total > max_bytes:
        raise SecretFileTooLargeError(
            f"{_where(variable, path)}: grew beyond the limit of {max_bytes} bytes"
            " while being read",
            variable=variable,
            path=path,
        )
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_secret_file(
    path: str,
    *,
    variable: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    strip: bool = True,
    check_permissions: bool = True,
    validate: bool = True,
) -> tuple[bytes, FileIdentity]:
    """Read and validate one secret file; return its content and the identity read.

    The identity comes from ``fstat`` of the descriptor actually read, so a caller that
    caches by identity can never pair new content with an old identity.
    ``validate=False`` returns the raw bytes (still opened and capped safely): change
    detection (``agentos_secrets.watch``) hashes binary keys too.
    """
    if not path or "\0" in path:
        raise SecretPathError(
            f"{variable or 'secret file'}: the path is empty or contains NUL",
            variable=variable,
            path=None,
        )
    if not os.path.isabs(path):
        # The value is not shown: it may be a secret set in NAME_FILE instead of NAME.
        raise SecretPathError(
            f"{variable or 'secret file'}: is not an absolute path (its value is not shown,"
            " in case it is the secret itself); give the absolute path of the file",
            variable=variable,
            path=None,
        )
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _open_error(exc, variable, path) from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        size = st.st_size
        if not stat.S_ISREG(mode):
            raise SecretFileNotRegularError(
                f"{_where(variable, path)}: is {_kind(mode)}, not a regular file",
                variable=variable,
                path=path,
            )
        if check_permissions and mode & _WRITABLE_BY_OTHERS:
            raise SecretFileInsecureError(
                f"{_where(variable, path)}: is writable by group or others"
                f" (mode {stat.S_IMODE(mode):04o}); make it 0600 or 0644",
                variable=variable,
                path=path,
            )
        if size > max_bytes:
            raise SecretFileTooLargeError(
                f"{_where(variable, path)}: is {size} bytes, more than the limit of {max_bytes}",
                variable=variable,
                path=path,
            )
        data = _read_capped(fd, size, max_bytes, variable, path)
    finally:
        os.close(fd)
    if not validate:
        return data, FileIdentity.of(st)
    return decode_secret(data, variable=variable, path=path, strip=strip), FileIdentity.of(st)


# -- the kubelet layout ------------------------------------------------------------------


def is_kubelet_volume(directory: str) -> bool:
    """True when ``directory`` has the atomic writer's ``..data`` symlink."""
    return os.path.islink(os.path.join(directory, DATA_LINK))


def current_generation(directory: str) -> str | None:
    """The name of the generation ``..data`` points at, or None outside a kubelet volume."""
    try:
        return os.readlink(os.path.join(directory, DATA_LINK))
    except OSError:
        return None


def volume_of(path: str) -> tuple[str, str] | None:
    """``(directory, key)`` when ``path`` is a key of a kubelet volume, else None.

    Dot-entries (``..data``, generation dirs) are never keys. The directory is
    normalised (``/v/./K``, ``/v//K``), so that every key of one volume is read in the
    same generation, whichever way its path was written.
    """
    directory, key = os.path.split(path)
    if not key or key.startswith(".") or not directory:
        return None
    directory = os.path.normpath(directory)
    if not is_kubelet_volume(directory):
        return None
    return directory, key


def iter_keys(directory: str) -> Iterator[str]:
    """The key names in ``directory``: every entry not starting with a dot.

    Entries are not opened; a key may still turn out to be unreadable.
    """
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in sorted(entries):
        if not entry.startswith("."):
            yield entry


def read_bounded(path: str, *, what: str, max_bytes: int) -> bytes:
    """The raw bytes of a file that is not a secret value (a manifest, an env file, a state
    file), read as safely as a secret: never blocks on a FIFO, never grows past
    ``max_bytes`` (``/dev/zero`` fails at once), a regular file only.

    This is the one bounded reader every component uses for files it did not write.
    ``what`` names the file in errors (a flag or variable, e.g. ``--env-file``); errors are
    :class:`SecretFileError` subclasses whose message names ``what`` and ``path`` (or hides
    a path that is not absolute, in case it is a secret typed into the wrong place).
    A caller for which a relative path is legitimate (a command-line argument) passes
    ``os.path.abspath(path)``.
    """
    data, _identity = read_secret_file(
        path, variable=what, max_bytes=max_bytes, check_permissions=False, validate=False
    )
    return data


def read_stream_bounded(fd: int, *, what: str, max_bytes: int, timeout: float) -> bytes:
    """All of the stream ``fd`` (stdin, a pipe), at most ``max_bytes``, within ``timeout``
    seconds: a pipe that never closes, or ``< /dev/zero``, is refused as it happens.

    :func:`read_bounded`'s counterpart for streams; ``what`` names the stream in errors
    (a :class:`SecretFileError`), which never quote its content.
    """
    import selectors
    import time

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    with selectors.DefaultSelector() as selector:
        try:
            selector.register(fd, selectors.EVENT_READ)
            pollable = True
        except (OSError, ValueError, PermissionError):
            pollable = False  # a regular file redirected in: reads never block
        while True:
            if pollable:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise SecretFileError(f"{what}: did not reach its end in {timeout:g} s")
            try:
                chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise SecretFileError(f"{what}: cannot be read ({exc.strerror})") from None
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise SecretFileTooLargeError(
                    f"{what}: is larger than the limit of {max_bytes} bytes"
                )
