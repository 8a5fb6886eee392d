"""The errors a caller may handle: one base class, one subclass per failure.

Every message names the variable and/or the path involved and never the content of a
secret. Errors carry ``variable`` and ``path`` attributes so that tools (``check``, the
sidecar's health) can report them without parsing text.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "InvalidNameError",
    "MissingSecretError",
    "ProviderError",
    "SecretEncodingError",
    "SecretError",
    "SecretFileError",
    "SecretFileInsecureError",
    "SecretFileNotFoundError",
    "SecretFileNotRegularError",
    "SecretFilePermissionError",
    "SecretFileTooLargeError",
    "SecretPathError",
    "SecretValueError",
]


class SecretError(Exception):
    """Base class of every error raised by agentos_secrets."""

    #: A stable short code (used by ``check`` and in logs).
    code: str = "secret-error"

    def __init__(
        self, message: str, *, variable: str | None = None, path: str | None = None
    ) -> None:
        super().__init__(message)
        self.variable = variable
        self.path = path

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidNameError(SecretError, ValueError):
    """The secret name is empty or not a valid environment variable name."""

    code = "invalid-name"


class MissingSecretError(SecretError, LookupError):
    """``Loader.require`` found no source for the secret."""

    code = "missing"


class ConflictError(SecretError):
    """``NAME`` and ``NAME_FILE`` are both set and ``on_conflict="error"``."""

    code = "conflict"


class ProviderError(SecretError):
    """The external provider raised or returned something that is not a secret."""

    code = "provider"


class SecretFileError(SecretError):
    """A secret file could not be read safely. Subclasses say why."""

    code = "file"


class SecretPathError(SecretFileError):
    """The path is not usable as given (relative, empty, contains NUL)."""

    code = "bad-path"


class SecretFileNotFoundError(SecretFileError):
    """The path does not exist, or is a symlink whose target does not exist."""

    code = "file-not-found"


class SecretFileNotRegularError(SecretFileError):
    """The path is a directory, FIFO, socket or device rather than a regular file."""

    code = "file-not-regular"


class SecretFilePermissionError(SecretFileError):
    """The process may not open the file."""

    code = "file-permission"


class SecretFileInsecureError(SecretFileError):
    """The file is writable by group or others: anyone could replace the secret."""

    code = "file-insecure"


class SecretFileTooLargeError(SecretFileError):
    """The file is larger than ``max_bytes``."""

    code = "file-too-large"


class SecretValueError(SecretError, ValueError):
    """The content is not acceptable as a secret (empty, contains NUL, ...)."""

    code = "bad-value"


class SecretEncodingError(SecretValueError):
    """The content is not strict UTF-8."""

    code = "bad-encoding"
