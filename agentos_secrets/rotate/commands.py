"""Run ``--test-cmd``, ``--store-cmd`` and ``--revoke-cmd`` without a shell.

The command line is split with :func:`shlex.split` and executed directly (no shell, so
nothing in it is interpreted twice). The value goes on stdin, never in argv or the
environment. The command's output is captured (bounded) and never echoed: a failing
issuer's tool may well print the credential it was given. What is shown is the exit
status and the first line of stderr with every known value replaced by ``[redacted]``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass

__all__ = ["CommandResult", "parse_command", "run_command"]

MAX_OUTPUT = 64 * 1024


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    summary: str  # exit status and a redacted first line of stderr


def parse_command(text: str, flag: str) -> list[str]:
    """``shlex.split`` a flag's command; ValueError naming the flag when it is unusable."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{flag}: cannot split the command ({exc})") from None
    if not argv:
        raise ValueError(f"{flag}: the command is empty")
    return argv


def redact(text: str, values: list[bytes]) -> str:
    for value in values:
        if value:
            text = text.replace(value.decode("utf-8", "replace"), "[redacted]")
    return text


def run_command(
    argv: list[str], stdin: bytes, *, timeout: float, env: dict[str, str],
    redact_values: list[bytes],
) -> CommandResult:
    """Run ``argv`` with ``stdin``; ``env`` is added to this process's environment."""
    try:
        completed = subprocess.run(
            argv, input=stdin, capture_output=True, timeout=timeout, check=False,
            env={**os.environ, **env}, close_fds=True,
        )
    except subprocess.TimeoutExpired:
        return CommandResult(False, f"timed out after {timeout:g} s (killed)")
    except OSError as exc:
        return CommandResult(False, f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    first = ""
    for line in completed.stderr[:MAX_OUTPUT].decode("utf-8", "replace").splitlines():
        if line.strip():
            first = redact(line.strip(), redact_values)[:200]
            break
    if completed.returncode == 0:
        return CommandResult(True, "exit status 0")
    detail = f": {first}" if first else ""
    return CommandResult(False, f"exit status {completed.returncode}{detail}")
