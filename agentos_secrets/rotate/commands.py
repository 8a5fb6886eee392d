"""Run ``--test-cmd``, ``--store-cmd`` and ``--revoke-cmd`` without a shell.

The command line is split with :func:`shlex.split` and executed directly (no shell, so
nothing in it is interpreted twice). The value goes on stdin, never in argv or the
environment. The command's output is never echoed: a failing issuer's tool may well
print the credential it was given. stdout is discarded, the first 64 KiB of stderr kept;
what is shown is the exit status and the first line of stderr with every known value
replaced by ``[redacted]`` (whole, JSON-escaped, and line by line for a multi-line value).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import IO

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


def _forms(value: bytes) -> list[str]:
    """Every form in which a command may print ``value``: whole, JSON-escaped (the store
    command's input), and each line of a multi-line value (the summary is one line)."""
    text = value.decode("utf-8", "replace")
    forms = [text, json.dumps(text)[1:-1]]
    forms += [line.strip() for line in text.splitlines() if len(line.strip()) >= 4]
    return sorted({f for f in forms if f}, key=len, reverse=True)


def redact(text: str, values: list[bytes]) -> str:
    for value in values:
        for form in _forms(value):
            text = text.replace(form, "[redacted]")
    return text


def _keep_first(stream: IO[bytes], kept: bytearray) -> None:
    """Read ``stream`` to its end, keeping its first MAX_OUTPUT bytes only."""
    with contextlib.suppress(OSError, ValueError):
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            if len(kept) < MAX_OUTPUT:
                kept.extend(chunk[: MAX_OUTPUT - len(kept)])


def _feed(stream: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):  # a command need not read its input
        stream.write(data)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_command(
    argv: list[str], stdin: bytes, *, timeout: float, env: dict[str, str],
    redact_values: list[bytes],
) -> CommandResult:
    """Run ``argv`` with ``stdin``; ``env`` is added to this process's environment.

    stdout is discarded and only the first MAX_OUTPUT bytes of stderr are kept, so a
    command that floods its output costs no memory; the command runs in a session of
    its own so that a timeout kills whatever it started too.
    """
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, **env}, close_fds=True, start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(False, f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    assert proc.stdin is not None and proc.stderr is not None
    kept = bytearray()
    threads = [threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True),
               threading.Thread(target=_keep_first, args=(proc.stderr, kept), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Whatever the command started goes with it: a child left behind would keep
        # running with the credential, and could hold stderr open.
        _kill_group(proc)
        proc.wait()
        returncode = None
    for thread in threads:
        thread.join(timeout=5)
    with contextlib.suppress(OSError):
        proc.stderr.close()
    if returncode is None:
        return CommandResult(False, f"timed out after {timeout:g} s (killed)")
    first = ""
    for line in bytes(kept).decode("utf-8", "replace").splitlines():
        if line.strip():
            first = redact(line.strip(), redact_values)[:200]
            break
    if returncode == 0:
        return CommandResult(True, "exit status 0")
    detail = f": {first}" if first else ""
    return CommandResult(False, f"exit status {returncode}{detail}")
