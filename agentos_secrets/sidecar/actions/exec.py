"""The ``exec`` action: run a command on each change.

The command runs without a shell (``--exec`` is split like a shell would, then run
directly), with stdin closed and its output discarded: a command that prints a secret
must not put it in the sidecar's logs. It gets ``AGENTOS_SECRETS_FINGERPRINT`` (the
``fp1:`` fingerprint of the new content) in its environment. Exit status 0 is success;
another status or a timeout is retryable (with backoff: a failing command is not run in
a tight loop, Vault issue 12566); a command that cannot be started is a configuration
error.
"""

from __future__ import annotations

import os
import subprocess

from .base import ActionError

__all__ = ["ExecAction"]


class ExecAction:
    kind = "exec"
    uses_fingerprint = True

    def __init__(self, argv: tuple[str, ...], *, timeout: float = 60.0) -> None:
        if not argv:
            raise ValueError("empty command")
        self.argv = argv
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ExecAction({os.path.basename(self.argv[0])!r})"

    def ready(self) -> str | None:
        return None

    def apply(self, fingerprint: str) -> None:
        env = dict(os.environ)
        if fingerprint:
            env["AGENTOS_SECRETS_FINGERPRINT"] = fingerprint
        name = os.path.basename(self.argv[0])
        try:
            result = subprocess.run(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ActionError(
                f"command {name} timed out after {self.timeout:g}s", retryable=True
            ) from None
        except OSError as exc:
            raise ActionError(
                f"command {name} cannot be run ({exc.strerror or type(exc).__name__})",
                retryable=False,
            ) from None
        if result.returncode != 0:
            raise ActionError(
                f"command {name} exited with status {result.returncode}", retryable=True
            )

    def close(self) -> None:
        pass
