"""Finding the app's process in the shared PID namespace, through ``/proc``.

A Pod with ``shareProcessNamespace: true`` lets the sidecar see the app's processes.
The target is found by exact name (``/proc/PID/comm``, or the basename of ``argv[0]``
since ``comm`` is cut at 15 characters), by a regular expression over the command line,
or by a pid file. Refused on purpose:

* the sidecar itself (a ``--target-cmdline`` pattern also matches the sidecar's own
  command line, which contains the pattern);
* the pause process (the pod sandbox, PID 1 in a shared namespace): signalling it would
  tear down the pod or do nothing;
* more than one match: which one to signal would be a guess;
* a process we may not signal (another UID without CAP_KILL: vault-k8s issues 196, 445).

:meth:`Target.open` pins the process with a pidfd when the kernel has them, so a pid
reused between finding and signalling can never be hit.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

from ...errors import SecretError
from ...files import read_bounded

__all__ = ["Target", "TargetSpec", "find_target", "parse_signal"]

PROC = "/proc"
#: Longest command line read from ``/proc/PID/cmdline`` (a longer one is not matched).
_MAX_CMDLINE = 1024 * 1024


def parse_signal(name: str) -> signal.Signals:
    """``HUP``, ``SIGHUP`` or ``1`` -> ``signal.SIGHUP``; ValueError when unknown."""
    text = name.strip().upper()
    if re.fullmatch(r"[0-9]{1,3}", text):
        return signal.Signals(int(text))  # ValueError when no such signal
    if not re.fullmatch(r"[A-Z0-9+-]{1,16}", text):
        raise ValueError("not a signal name or number")
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError("unknown signal name") from None


@dataclass(frozen=True, slots=True)
class Target:
    pid: int
    name: str

    def open(self) -> int | None:
        """A pidfd for the process, or None when the kernel or Python has none."""
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            return int(pidfd_open(self.pid))
        except OSError:
            return None


@dataclass(frozen=True, slots=True, repr=False)
class TargetSpec:
    """How to find the target: exactly one of the three is set."""

    name: str | None = None
    cmdline: str | None = None
    pidfile: str | None = None

    def __repr__(self) -> str:
        # As describe(): the free-text name and pattern are not quoted (a secret may
        # have been typed into the wrong variable).
        return f"TargetSpec({self.describe()})"

    def describe(self) -> str:
        """The target as messages (logs, ``/readyz``) name it. Free-text flag values are
        not quoted: one may be a secret typed into the wrong variable, and ``/readyz``
        is open to the pod network. The pid file is an absolute path (config.py)."""
        if self.name:
            return "the --target-name given"
        if self.cmdline:
            return "a command line matching the --target-cmdline given"
        return f"pid file {self.pidfile}"


def _read(path: str, limit: int = _MAX_CMDLINE) -> bytes | None:
    """The bytes of a ``/proc`` file or the pid file, None when unreadable or over ``limit``.

    Read with the bounded reader, never ``open()``: a pid file replaced by a FIFO or a
    link to ``/dev/zero`` fails at once instead of hanging or filling memory.
    """
    try:
        return read_bounded(path, what="target", max_bytes=limit)
    except SecretError:
        return None


def _comm(pid: int) -> str:
    raw = _read(f"{PROC}/{pid}/comm", 64)
    return raw.decode("utf-8", "replace").strip() if raw else ""


def _argv(pid: int) -> list[str]:
    raw = _read(f"{PROC}/{pid}/cmdline")
    if not raw:
        return []
    return [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]


def _state(pid: int) -> str:
    raw = _read(f"{PROC}/{pid}/stat", 512)
    if not raw:
        return ""
    # "pid (comm) S ...": comm may contain spaces and parentheses; take after the last ')'.
    tail = raw.rsplit(b")", 1)[-1].split()
    return tail[0].decode() if tail else ""


def exists(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited: it counts as gone)."""
    state = _state(pid)
    return bool(state) and state not in ("Z", "X")


def _is_pause(pid: int) -> bool:
    if _comm(pid) == "pause":
        return True
    argv = _argv(pid)
    return bool(argv) and os.path.basename(argv[0]) == "pause"


def _pids() -> list[int]:
    try:
        return [int(e) for e in os.listdir(PROC) if e.isdigit()]
    except OSError:
        return []


def _candidates(spec: TargetSpec) -> tuple[list[int], str | None]:
    if spec.pidfile:
        raw = _read(spec.pidfile, 64)
        if raw is None:
            return [], f"pid file {spec.pidfile} cannot be read"
        text = raw.decode("ascii", "replace").strip()
        if not text.isdigit() or int(text) <= 0:
            return [], f"pid file {spec.pidfile} does not hold a pid"
        pid = int(text)
        return ([pid] if exists(pid) else []), None
    pattern = re.compile(spec.cmdline) if spec.cmdline else None
    found: list[int] = []
    for pid in _pids():
        if not exists(pid):
            continue
        if pattern is not None:
            if pattern.search(" ".join(_argv(pid))):
                found.append(pid)
        else:
            argv = _argv(pid)
            argv0 = os.path.basename(argv[0]) if argv else ""
            if spec.name in (_comm(pid), argv0):
                found.append(pid)
    return found, None


def find_target(spec: TargetSpec) -> tuple[Target | None, str | None]:
    """(the one target, None), or (None, why not): the reason ``/readyz`` shows."""
    pids, problem = _candidates(spec)
    if problem:
        return None, problem
    me = os.getpid()
    pids = [p for p in pids if p != me]
    if not pids:
        return None, f"no process with {spec.describe()} (is shareProcessNamespace on?)"
    if len(pids) > 1:
        shown = ", ".join(str(p) for p in sorted(pids)[:5])
        return None, f"{len(pids)} processes with {spec.describe()} (pids {shown}); need one"
    pid = pids[0]
    if _is_pause(pid):
        return None, f"process {pid} with {spec.describe()} is the pod's pause process"
    try:
        os.kill(pid, 0)
    except PermissionError:
        return None, (
            f"process {pid} with {spec.describe()} may not be signalled"
            " (run the sidecar as the app's user, or grant CAP_KILL)"
        )
    except ProcessLookupError:
        return None, f"process {pid} with {spec.describe()} exited"
    return Target(pid, _comm(pid)), None
