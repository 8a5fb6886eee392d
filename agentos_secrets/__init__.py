"""agentos-secrets: the secrets layer of AgentOS.

The public surface is small: :class:`Loader` resolves secrets by name, :class:`Secret`
holds a value that never shows itself by accident, and every error derives from
:class:`SecretError`. Nothing heavy is imported here: watchdog, httpx, cryptography,
pydantic and prometheus_client load only where they are used.
"""

from __future__ import annotations

from .errors import (
    ConflictError,
    InvalidNameError,
    MissingSecretError,
    ProviderError,
    SecretEncodingError,
    SecretError,
    SecretFileError,
    SecretFileInsecureError,
    SecretFileNotFoundError,
    SecretFileNotRegularError,
    SecretFilePermissionError,
    SecretFileTooLargeError,
    SecretPathError,
    SecretValueError,
)
from .loader import Explanation, Loader
from .secret import Secret, fingerprint_bytes

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "Explanation",
    "InvalidNameError",
    "Loader",
    "MissingSecretError",
    "ProviderError",
    "Secret",
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
    "__version__",
    "fingerprint_bytes",
]
