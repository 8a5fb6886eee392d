"""The ``exec`` action: run a command on each change.

The command runs without a shell (``--exec`` is split like a shell would, then run
directly), with stdin closed and its output discarded: a command that prints a secret
must not put it in the sidecar's logs. It gets ``AGENTOS_SECRETS_FINGERPRINT`` (the
``fp1:`` fingerprint of the new content) in its environment. Exit status 0 is success;
another status or a timeout is retryable (with backoff: a failing command is not run in
a tight loop, Vault issue 12566); a command that cannot be started is a configuration
error.

The command runs in a process group of its own, and a timeout or a shutdown kills the
whole group: killing only the direct child (what ``subprocess.run`` does) left a shell's
children running, and a SIGTERM during a hung command waited the full timeout (60 s,
longer than Kubernetes' 30 s grace) before the sidecar could exit. :meth:`abort` (called
on SIGTERM) sends SIGTERM to the group, SIGKILL after ``grace`` seconds, and refuses
any later run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading

from .base import ActionError

__all__ = ["ExecAction"]


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The child leads its own session, so its pid is the group id; a group that is
    # already gone is fine.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class ExecAction:
    kind = "exec"
    uses_fingerprint = True

    def __init__(self, argv: tuple[str, ...], *, timeout: float = 60.0) -> None:
        if not argv:
            raise ValueError("empty command")
        self.argv = argv
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._aborted = threading.Event()

    @property
    def name(self) -> str:
        """How messages name the command: the basename of an absolute ``argv[0]``; a bare
        word is not shown (``--exec`` may hold a secret typed into the wrong variable,
        and the name reaches the logs and ``/healthz``)."""
        first = self.argv[0]
        return os.path.basename(first) if first.startswith("/") else "(--exec command)"

    def __repr__(self) -> str:
        return f"ExecAction({self.name!r})"

    def ready(self) -> str | None:
        return None

    def apply(self, fingerprint: str) -> None:
        env = dict(os.environ)
        if fingerprint:
            env["AGENTOS_SECRETS_FINGERPRINT"] = fingerprint
        name = self.name
        with self._lock:
            if self._aborted.is_set():
                raise ActionError(f"command {name} not run: shutting down", retryable=True)
            # Errors are raised outside the except blocks: OSError.filename holds
            # argv[0] and TimeoutExpired.cmd the whole command line, which may carry a
            # secret, and would travel along as __context__.
            failure: str | None = None
            try:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                failure = exc.strerror or type(exc).__name__
            if failure is not None:
                raise ActionError(f"command {name} cannot be run ({failure})", retryable=False)
            self._proc = proc
        try:
            timed_out = False
            try:
                status = proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            if timed_out:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
                raise ActionError(
                    f"command {name} timed out after {self.timeout:g}s", retryable=True
                )
        finally:
            with self._lock:
                self._proc = None
        if self._aborted.is_set():
            raise ActionError(f"command {name} interrupted: shutting down", retryable=True)
        if status != 0:
            raise ActionError(f"command {name} exited with status {status}", retryable=True)

    def abort(self, grace: float) -> None:
        """Shutting down: stop the command in progress (its whole group), run no other.

        SIGTERM to the group, SIGKILL after ``grace`` seconds; returns when the command
        is gone (at most about ``grace`` seconds).
        """
        self._aborted.set()
        with self._lock:
            proc = self._proc
        if proc is None:
            return
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(max(0.0, grace))
        except subprocess.TimeoutExpired:
            pass
        _kill_group(proc, signal.SIGKILL)  # also whatever it left behind in its group

    def close(self) -> None:
        self.abort(0.0)
