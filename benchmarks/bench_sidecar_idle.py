"""The sidecar at rest: idle CPU and wakeups, and peak memory, with 20 watched volumes.

A sidecar runs beside every container for months and mostly waits, so what it costs
while nothing happens matters more than its speed. Three processes are measured side by
side over the same window (60 s; ``BENCH_QUICK=1``: 5 s):

* the sidecar, default settings (``--resync 60``), 20 ``--watch`` directories;
* the raw-inotify baseline (ctypes + httpx) watching the same 20 directories;
* a Python interpreter asleep in ``time.sleep`` (the floor of any Python process).

Figures: CPU seconds (user + system, all threads, ``/proc/PID/stat``, 10 ms ticks) and
wakeups (voluntary + involuntary context switches summed over
``/proc/PID/task/*/status``; measured 0 over 40 s between two re-checks).
Target (issue 6): no wakeups beyond the resync timer. Then one rotation makes every
code path load (hashing, the HTTP client, metrics) and peak RSS (``VmHWM``) is read.
Target: at most 30 MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import (
    ProcSample,
    Receiver,
    mode_note,
    proc_sample,
    sizes,
    start_baseline,
    start_sidecar,
)
from examples.procs import Children

DIRECTORIES = 20
IDLE_S = float(sizes(60, 5))
SETTLE_S = 2.0
RSS_TARGET_MIB = 30.0
RESYNC_S = 60.0


def _row(name: str, before: ProcSample, after: ProcSample, seconds: float) -> str:
    cpu = after.cpu_s - before.cpu_s
    wakeups = after.switches - before.switches
    return (
        f"    {name:<34} CPU {cpu:6.3f} s ({cpu / seconds * 100:5.2f} %)"
        f"  wakeups {wakeups:5d} ({wakeups / seconds:6.2f}/s)  threads {after.threads}"
    )


# What each of the sidecar's dependencies costs on its own: peak RSS of a fresh interpreter
# importing it (they share part of the standard library, so the extras do not add up).
_IMPORTS = (
    "pass",
    "import agentos_secrets",
    "import watchdog.observers.inotify",
    "import httpx",
    "import prometheus_client",
)


def _import_hwm_mib(code: str) -> float:
    probe = (
        f"{code}\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM'): print(int(line.split()[1]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def _where_memory_goes() -> None:
    print("  where the memory goes: peak RSS of a fresh interpreter running each line alone")
    bare = _import_hwm_mib("pass")
    for code in _IMPORTS:
        hwm = _import_hwm_mib(code)
        extra = "" if code == "pass" else f"  (+{hwm - bare:5.1f} MiB over a bare interpreter)"
        print(f"    {code:<34} {hwm:6.1f} MiB{extra}")


def main() -> None:
    print(f"Sidecar at rest, {DIRECTORIES} watched directories ({mode_note()})")
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp, Receiver() as receiver:
        volumes = [os.path.join(tmp, f"vol{i:02d}") for i in range(DIRECTORIES)]
        writers = [AtomicWriter(path) for path in volumes]
        for writer in writers:
            writer.write({"AGENTOS_SERVICE_TOKEN": "idle-token-0"})
        with Children() as children:
            processes = {
                "sidecar (defaults)": start_sidecar(
                    children, "sidecar", volumes, receiver.url("/sidecar")
                ),
                "raw inotify + httpx baseline": start_baseline(
                    children, "baseline", volumes, receiver.url("/baseline")
                ),
                "python asleep (time.sleep)": children.start(
                    "sleeper", [sys.executable, "-c", "import time; time.sleep(86400)"]
                ),
            }
            time.sleep(SETTLE_S)
            before = {name: proc_sample(c.pid) for name, c in processes.items()}
            started = time.monotonic()
            time.sleep(IDLE_S)
            after = {name: proc_sample(c.pid) for name, c in processes.items()}
            seconds = time.monotonic() - started
            print(f"  idle for {seconds:.1f} s (resync timer: every {RESYNC_S:g} s)")
            for name in processes:
                print(_row(name, before[name], after[name], seconds))
            sidecar_wakeups = after["sidecar (defaults)"].switches - before[
                "sidecar (defaults)"
            ].switches
            floor = after["python asleep (time.sleep)"].switches - before[
                "python asleep (time.sleep)"
            ].switches
            resyncs = round(seconds / RESYNC_S)
            print(
                f"    sidecar wakeups beyond the sleeping interpreter: {sidecar_wakeups - floor}"
                f" (the resync timer fired about {resyncs} time(s) in {seconds:.0f} s;"
                " one re-check of 20 volumes costs a few context switches)"
            )

            writers[0].write({"AGENTOS_SERVICE_TOKEN": "idle-token-1"})
            receiver.wait_count("/sidecar", 1, timeout=15)
            receiver.wait_count("/baseline", 1, timeout=15)
            time.sleep(0.5)
            print("  peak RSS (VmHWM) after one rotation was handled")
            for name, child in processes.items():
                hwm = proc_sample(child.pid).hwm_kib / 1024
                print(f"    {name:<34} {hwm:6.1f} MiB")
            hwm = proc_sample(processes["sidecar (defaults)"].pid).hwm_kib / 1024
            base = proc_sample(processes["python asleep (time.sleep)"].pid).hwm_kib / 1024
            verdict = "meets" if hwm <= RSS_TARGET_MIB else "MISSES"
            print(
                f"    sidecar {hwm:.1f} MiB = {hwm / base:.1f}x a bare interpreter;"
                f" {verdict} the target of at most {RSS_TARGET_MIB:g} MiB"
                " (Go reloaders 10-50 MiB, Python k8s-sidecar 80-189 MB)"
            )
    _where_memory_goes()


if __name__ == "__main__":
    main()
