"""Driving ``agentos-secrets rotate`` against the local cluster: run, follow, interrupt.

Shared by the demo, the e2e tests and the benchmark. The CLI runs as a subprocess, as an
operator runs it; its output lines are stamped on arrival and can be echoed as they come.
:func:`phase` reads where a rotation stands from the Secret itself (the same evidence an
operator has): ``before``, ``staged``, ``switched`` or ``dropped``, so a test can SIGKILL
the CLI in the phase it wants without depending on its wording.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from examples.cluster import Cluster
from examples.procs import Child, Line

__all__ = [
    "PHASE_ANNOTATION",
    "RotateRun",
    "phase",
    "phase_writes",
    "run_rotate",
    "runbook_rotation",
    "window_flags",
]

#: The annotation in which rotate records its phase on the Secret (docs/rotate.md).
PHASE_ANNOTATION = "rotate.agentos.dev/phase"


def window_flags(
    *, grace: float, gate_timeout: float, quiet: float = 0.5, poll: float = 0.25
) -> list[str]:
    """rotate's timing flags scaled down for a local run.

    In life (the defaults): ``--grace 600 --quiet 60 --gate-timeout 180 --poll 2`` and a
    client-side limit of 5 requests/s (``--qps 5 --burst 10``). The poll interval here is
    shorter by ``2 / poll``, so the request rate limit is raised by the same factor: the
    same number of requests per poll round, as in life.
    """
    factor = 2.0 / poll
    return [
        "--grace", f"{grace:g}",
        "--quiet", f"{quiet:g}",
        "--gate-timeout", f"{gate_timeout:g}",
        "--poll", f"{poll:g}",
        "--qps", f"{5 * factor:g}",
        "--burst", f"{int(10 * factor)}",
        "--output", "plain",
    ]  # fmt: skip


def phase(data: dict[str, bytes], name: str, old: bytes) -> str:
    """Where a rotation of ``name`` away from ``old`` stands, from the Secret's data."""
    current = data.get(name)
    previous = data.get(name + "_PREVIOUS")
    if current == old:
        return "before" if previous is None else "staged"
    if previous == old:
        return "switched"
    return "dropped" if previous is None else "unknown"


def phase_writes(cluster: Cluster, since: float, until: float) -> list[tuple[str, float]]:
    """The Secret writes that succeeded between ``since`` and ``until`` (monotonic s), as
    (the phase annotation they set, arrival time), in order, from the API request log."""
    path = f"/api/v1/namespaces/{cluster.namespace}/secrets/{cluster.secret}"
    writes: list[tuple[str, float]] = []
    for request in cluster.api.requests:
        if not (
            request.method in ("PATCH", "PUT")
            and request.path.split("?")[0] == path
            and 200 <= request.status < 300
            and since <= request.at <= until
        ):
            continue
        try:
            body = json.loads(request.body)
            label = body["metadata"]["annotations"][PHASE_ANNOTATION]
        except (ValueError, KeyError, TypeError):
            label = "?"
        writes.append((str(label), request.at))
    return writes


@dataclass
class RotateRun:
    """One run of the CLI: exit status, output lines, times (monotonic s), what killed it."""

    child: Child
    returncode: int
    started: float
    ended: float
    killed_in: str | None = None

    @property
    def lines(self) -> list[Line]:
        return list(self.child.lines)

    @property
    def output(self) -> str:
        return "\n".join(line.text for line in self.child.lines)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def run_rotate(
    cluster: Cluster,
    *args: str,
    echo: Callable[[Line], None] | None = None,
    kill_when: Callable[[], str | None] | None = None,
    timeout: float = 120.0,
) -> RotateRun:
    """Run ``agentos-secrets rotate ARGS`` on ``cluster`` until it exits.

    ``echo`` gets each output line as it arrives. ``kill_when`` is polled every 20 ms;
    when it returns a label, the CLI is sent SIGKILL (no chance to clean up, as a lost
    laptop or an OOM kill) and the label is kept as :attr:`RotateRun.killed_in`. After
    ``timeout`` seconds the CLI is killed and a RuntimeError raised.
    """
    started = time.monotonic()
    child = cluster.children.start("rotate", cluster.rotate_argv(*args), env=cluster.rotate_env())
    shown = 0
    killed: str | None = None
    deadline = started + timeout
    while True:
        # done: exited, and both pump threads reached EOF (they close their stream)
        process = child.process
        done = process.poll() is not None and all(
            stream is None or stream.closed for stream in (process.stdout, process.stderr)
        )
        fresh = child.lines_since(shown)
        shown += len(fresh)
        if echo is not None:
            for line in fresh:
                echo(line)
        if done:
            break
        if killed is None and kill_when is not None and process.poll() is None:
            label = kill_when()
            if label is not None:
                child.process.send_signal(signal.SIGKILL)
                killed = label
        if time.monotonic() > deadline:
            child.process.kill()
            child.process.wait()
            raise RuntimeError(f"rotate did not finish in {timeout:g} s:\n{child.output()}")
        time.sleep(0.02)
    try:
        returncode = child.process.wait(5)
    except subprocess.TimeoutExpired:
        child.process.kill()
        returncode = child.process.wait()
    return RotateRun(child, returncode, started, time.monotonic(), killed)


def runbook_rotation(
    cluster: Cluster, name: str, new: bytes, *, wait: float, grace: float
) -> dict[str, float]:
    """The runbook of docs/live-secrets.md, done by hand with fixed waits.

    Stage (``NAME_PREVIOUS`` = new), ``sleep wait``, switch (``NAME`` = new,
    ``NAME_PREVIOUS`` = old, in one update), ``sleep wait`` and at least the grace window
    since the switch, drop (``NAME_PREVIOUS`` removed). Each step replaces the Secret's
    data as one ``kubectl patch`` would. Returns the monotonic time of each write.
    """
    data = cluster.secret_data()
    old = data[name]
    times: dict[str, float] = {}

    def write(step: str, content: dict[str, bytes]) -> None:
        cluster.api.put_secret(cluster.namespace, cluster.secret, content)
        times[step] = time.monotonic()

    write("staged", data | {name + "_PREVIOUS": new})
    time.sleep(wait)
    write("switched", data | {name: new, name + "_PREVIOUS": old})
    time.sleep(max(wait, grace))
    write("dropped", data | {name: new})
    return times
