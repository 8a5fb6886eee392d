"""The ``signal`` action: send a signal (default HUP) to the app's process.

The target is looked up again on every attempt (the app may have restarted with a new
pid) and pinned with a pidfd before the signal is sent, so a recycled pid is never hit.
``ready()`` says why there is no usable target (none, several, the pause process, not
permitted); ``/readyz`` shows it.
"""

from __future__ import annotations

import os
import signal

from .base import ActionError
from .process import Target, TargetSpec, find_target, parse_signal

__all__ = ["SignalAction", "send"]


def send(target: Target, sig: signal.Signals) -> None:
    """Signal ``target`` through a pidfd when possible; ActionError on failure."""
    pidfd = target.open()
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(target.pid, sig)
    except ProcessLookupError:
        raise ActionError(
            f"process {target.pid} exited before {sig.name}", retryable=True
        ) from None
    except PermissionError:
        raise ActionError(
            f"process {target.pid}: not permitted to send {sig.name}", retryable=False
        ) from None
    finally:
        if pidfd is not None:
            os.close(pidfd)


class SignalAction:
    kind = "signal"
    uses_fingerprint = False

    def __init__(self, spec: TargetSpec, sig: str | signal.Signals = "HUP") -> None:
        self.spec = spec
        self.signal = sig if isinstance(sig, signal.Signals) else parse_signal(sig)

    def __repr__(self) -> str:
        return f"SignalAction({self.signal.name} to {self.spec.describe()})"

    def ready(self) -> str | None:
        return find_target(self.spec)[1]

    def target(self) -> Target:
        found, why = find_target(self.spec)
        if found is None:
            raise ActionError(why or "no target", retryable=True)
        return found

    def apply(self, fingerprint: str) -> None:
        send(self.target(), self.signal)

    def close(self) -> None:
        pass
