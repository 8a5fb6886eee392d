"""Child processes for the demo and the benchmarks: started together, never left behind.

:class:`Children` starts each process with ``PR_SET_PDEATHSIG`` (the kernel sends it
SIGTERM if the parent dies, even by SIGKILL), stops them in reverse order with SIGTERM
then SIGKILL, and reaps each one. Output lines are read by one thread per stream and
stamped with ``time.monotonic()`` on arrival, so a caller can place a child's log lines
on its own timeline.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["Child", "Children", "Line", "python_module"]

_PR_SET_PDEATHSIG = 1


# Resolved once in the parent: the child, between fork and exec, only calls it (no dlopen,
# no lock that another thread of the parent could have held at fork time).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


@dataclass(frozen=True)
class Line:
    """One output line of a child and when it arrived (monotonic seconds)."""

    at: float
    stream: str
    text: str

    def json(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    lines: list[Line] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self, stream: IO[str], label: str) -> None:
        for text in stream:
            with self._cond:
                self.lines.append(Line(time.monotonic(), label, text.rstrip("\n")))
                self._cond.notify_all()
        stream.close()

    def wait_line(self, predicate: Callable[[Line], bool], timeout: float) -> Line | None:
        """The first line (already read or arriving within ``timeout``) matching."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and seen == len(self.lines)):
                    return None
                self._cond.wait(min(remaining, 0.1))

    def lines_since(self, index: int) -> list[Line]:
        """The lines read so far from the ``index``-th on (for following a child live)."""
        with self._cond:
            return self.lines[index:]

    def output(self) -> str:
        with self._cond:
            return "\n".join(f"[{self.name} {line.stream}] {line.text}" for line in self.lines)


class Children:
    """Start processes; :meth:`stop_all` (also on ``with`` exit) stops and reaps them."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> Child:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            preexec_fn=_die_with_parent,
        )
        child = Child(name, process)
        self.started.append(child)
        for stream, label in ((process.stdout, "out"), (process.stderr, "err")):
            assert stream is not None
            threading.Thread(target=child._pump, args=(stream, label), daemon=True).start()
        return child

    def stop(self, child: Child, *, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        process = child.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for child in reversed(self.started):
            self.stop(child)

    def alive(self) -> list[int]:
        """Pids of started children not yet exited and reaped."""
        return [child.pid for child in self.started if child.process.poll() is None]
