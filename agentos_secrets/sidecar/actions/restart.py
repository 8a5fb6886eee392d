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
import time

from .base import ActionError
from .process import Target, TargetSpec, exists
from .signal import SignalAction, send

__all__ = ["RestartAction", "wait_gone"]

_KILL_WAIT = 5.0


def wait_gone(target: Target, timeout: float) -> bool:
    """True when ``target`` exits within ``timeout`` seconds."""
    pidfd = target.open()
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if poller.poll(max(0, int(timeout * 1000))):
                return True
        finally:
            os.close(pidfd)
        return not exists(target.pid)
    deadline = time.monotonic() + timeout
    while exists(target.pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class RestartAction(SignalAction):
    kind = "restart"
    uses_fingerprint = False

    def __init__(self, spec: TargetSpec, grace_period: float = 30.0) -> None:
        super().__init__(spec, signal.SIGTERM)
        self.grace_period = grace_period

    def __repr__(self) -> str:
        return f"RestartAction({self.spec.describe()}, grace {self.grace_period:g}s)"

    def apply(self, fingerprint: str) -> None:
        target = self.target()
        send(target, signal.SIGTERM)
        if wait_gone(target, self.grace_period):
            return
        try:
            send(target, signal.SIGKILL)
        except ActionError:
            if not exists(target.pid):
                return  # it exited between the grace period and the kill
            raise
        if not wait_gone(target, _KILL_WAIT):
            raise ActionError(
                f"process {target.pid} still runs {_KILL_WAIT:g}s after SIGKILL", retryable=True
            )
