"""The ``restart`` action: SIGTERM the app, SIGKILL it after ``--grace-period``.

The kubelet then restarts the container, and the app reads its secrets fresh. Success
means the process is gone (a zombie counts as gone: it has exited). Waiting uses the
process's pidfd, which becomes readable when it exits, so no polling loop spins while
a well-behaved app shuts down; without pidfds it polls ``/proc`` every 50 ms.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

from .base import ActionError
from .process import Target, TargetSpec, exists
from .signal import SignalAction, send

__all__ = ["RestartAction", "wait_gone"]

_KILL_WAIT = 5.0
_SLICE = 0.1  # how often a wait looks at its cancel event


def wait_gone(
    target: Target, timeout: float, cancel: threading.Event | None = None
) -> bool:
    """True when ``target`` exits within ``timeout`` seconds.

    ``cancel`` (set on shutdown) ends the wait early, answering False: the wait is
    sliced so a SIGTERM never waits out a long ``--grace-period``.
    """
    deadline = time.monotonic() + timeout
    pidfd = target.open()
    try:
        poller = None
        if pidfd is not None:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
        while True:
            if pidfd is None and not exists(target.pid):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (cancel is not None and cancel.is_set()):
                return not exists(target.pid)
            if poller is not None:
                if poller.poll(max(1, int(min(left, _SLICE) * 1000))):
                    return True
            else:
                time.sleep(min(left, 0.05))
    finally:
        if pidfd is not None:
            os.close(pidfd)


class RestartAction(SignalAction):
    kind = "restart"
    uses_fingerprint = False

    def __init__(self, spec: TargetSpec, grace_period: float = 30.0) -> None:
        super().__init__(spec, signal.SIGTERM)
        self.grace_period = grace_period
        self._cancel = threading.Event()

    def abort(self, grace: float) -> None:
        """Shutting down: stop waiting for the target (it has had its SIGTERM)."""
        self._cancel.set()

    def __repr__(self) -> str:
        return f"RestartAction({self.spec.describe()}, grace {self.grace_period:g}s)"

    def apply(self, fingerprint: str) -> None:
        if self._cancel.is_set():
            raise ActionError("restart not run: shutting down", retryable=True)
        target = self.target()
        send(target, signal.SIGTERM)
        if wait_gone(target, self.grace_period, self._cancel):
            return
        if self._cancel.is_set():
            raise ActionError(
                f"process {target.pid}: stopped waiting for it to exit: shutting down",
                retryable=True,
            )
        try:
            send(target, signal.SIGKILL)
        except ActionError:
            if not exists(target.pid):
                return  # it exited between the grace period and the kill
            raise
        if not wait_gone(target, _KILL_WAIT, self._cancel):
            raise ActionError(
                f"process {target.pid} still runs {_KILL_WAIT:g}s after SIGKILL", retryable=True
            )
