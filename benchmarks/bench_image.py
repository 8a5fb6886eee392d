"""The sidecar's image: size, start-up time and memory, beside the sidecar run from a venv.

The image is built by ``make image`` (sidecar/build-image.sh: podman, a Debian stand-in
for python:3.11-slim-bookworm) and run as the container tests run it: read-only root,
uid 10001, no capabilities, host loopback only (tests/image/image_lib.py). The same
sidecar, same flags, from this checkout's venv, is measured in the same run.

* Size: the image, its base, and what the Dockerfile adds (the part a different base
  does not change).
* Start-up: ``podman start`` of a created container until ``/startupz`` answers 200 (the
  native sidecar's startupProbe, which gates the app), beside spawning the venv's process
  until the same answer. ``podman run`` (creation included) is shown too: with the vfs
  store it copies the whole root file system, which overlayfs on a node does not.
* Memory: peak RSS (``VmHWM``, read from the host's /proc) and threads after one rotation
  was handled (``--action http`` to a loopback receiver), with 1 and 20 watched
  directories. Budget: 30 MiB. Then the peak of a fresh interpreter inside the image
  importing each dependency alone: where the memory goes.

Needs root and podman (as the container tests do); otherwise prints why and returns.
``BENCH_QUICK=1``: one start-up sample instead of five.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import (
    Receiver,
    free_port,
    mode_note,
    proc_sample,
    sidecar_argv,
    sizes,
)
from examples.procs import Children
from tests.image.image_lib import (
    SECRETS,
    Containers,
    build_image,
    get,
    kubelet_dir,
    podman,
    state_dir,
    wait_for,
    why_not,
)

RSS_BUDGET_MIB = 30.0
KEY = "AGENTOS_SERVICE_TOKEN"
FLAGS = ["--debounce", "0.2", "--min-interval", "0"]
STARTS = sizes(5, 1)

# Inside the image, one interpreter importing what the sidecar imports, step by step: what
# each step adds to the resident set beyond the steps before it (shared parts counted once).
_IMPORTS_PROBE = r"""
import importlib, json

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

steps = [("the interpreter (with importlib, json)", [])] + [(what, mods.split()) for what, mods in (
    ("threading, json, socket", "threading json socket"),
    ("hashlib (loads OpenSSL's libcrypto)", "hashlib"),
    ("watchdog.observers.inotify", "watchdog.observers.inotify"),
    ("prometheus_client (http.server, urllib, ssl)", "prometheus_client"),
    ("httpx (the http and rollout actions)", "httpx"),
    ("the sidecar's own modules", "agentos_secrets.sidecar.main agentos_secrets.sidecar.server"),
)]
out = []
for what, modules in steps:
    for module in modules:
        importlib.import_module(module)
    out.append([what, rss()])
import ssl
ssl.create_default_context()
out.append(["a TLS context with the CA bundle", rss()])
print(json.dumps(out))
"""


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:6.1f} MiB"


def _sizes(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    history = json.loads(podman("history", "--format", "json", image).stdout)
    total = inspected["Size"]
    # The base is the oldest layer (one layer: the imported stand-in root file system).
    base = history[-1]["size"]
    print("  size (uncompressed, as podman reports it)")
    print(f"    image                                   {_mib(total)}")
    print(f"    stand-in base (Debian bookworm python3)  {_mib(base)}")
    print(f"    added by sidecar/Dockerfile              {_mib(total - base)}")
    survey = r"""
import os, sysconfig
def du(top, only_pycache=False):
    total = 0
    for dirpath, _, files in os.walk(top):
        if only_pycache and os.path.basename(dirpath) != "__pycache__":
            continue
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total
print(du("/opt/sidecar"), du(sysconfig.get_paths()["stdlib"], only_pycache=True))
"""
    out = Containers(image).one_shot("python", "-c", survey)
    if out.returncode == 0:
        venv, stdlib_pyc = (int(n) for n in out.stdout.split())
        print(f"      the venv /opt/sidecar                  {_mib(venv)}")
        print(f"      standard-library bytecode              {_mib(stdlib_pyc)}")


def _startupz(port: int) -> bool:
    try:
        return get(port, "/startupz")[0] == 200
    except OSError:
        return False


def _start_times(containers: Containers, tmp: Path, receiver: Receiver) -> None:
    volume = kubelet_dir(tmp / "start-secrets")
    AtomicWriter(volume).write({KEY: "start-token"})
    args = ["--url", receiver.url("/start"), *FLAGS]
    started, run_total, venv = [], [], []
    for i in range(STARTS):
        state = state_dir(tmp / f"start-state-{i}")
        sidecar = containers.run(volume, state, args, start=False)
        t0 = time.monotonic()
        sidecar.start()
        if not wait_for(lambda s=sidecar: _startupz(s.port), 60, 0.01):
            raise RuntimeError(f"container never started:\n{sidecar.logs()}")
        started.append(time.monotonic() - t0)

        t0 = time.monotonic()
        sidecar = containers.run(volume, state_dir(tmp / f"run-state-{i}"), args)
        if not wait_for(lambda s=sidecar: _startupz(s.port), 60, 0.01):
            raise RuntimeError(f"container never started:\n{sidecar.logs()}")
        run_total.append(time.monotonic() - t0)

        with Children() as children:
            port = free_port()
            t0 = time.monotonic()
            children.start("venv", sidecar_argv([str(volume)], receiver.url("/venv"), port,
                                                *FLAGS, "--state-file",
                                                str(tmp / f"venv-state-{i}.json")))
            if not wait_for(lambda p=port: _startupz(p), 60, 0.01):
                raise RuntimeError("venv sidecar never started")
            venv.append(time.monotonic() - t0)
        containers.remove_all()
    med = statistics.median
    print(f"  start-up to /startupz 200, median of {STARTS}")
    print(f"    podman start of a created container      {med(started) * 1000:7.0f} ms"
          f"  ({med(started) / med(venv):.2f}x the venv)")
    print(f"    venv process (spawn to 200)              {med(venv) * 1000:7.0f} ms")
    print(f"    podman run, vfs copy of the root fs included {med(run_total) * 1000:5.0f} ms")


def _memory(containers: Containers, tmp: Path, receiver: Receiver, count: int) -> None:
    parent = kubelet_dir(tmp / f"mem-{count}")
    writers = []
    for i in range(count):
        writer = AtomicWriter(kubelet_dir(parent / f"vol{i:02d}"))
        writer.write({KEY: "memory-token-0"})
        writers.append(writer)
    watch_in = [f"--watch={SECRETS}/vol{i:02d}" for i in range(count)]
    sidecar = containers.run(parent, state_dir(tmp / f"mem-state-{count}"),
                             [*watch_in, "--url", receiver.url(f"/image-{count}"), *FLAGS])
    sidecar.wait_started()
    with Children() as children:
        port = free_port()
        watch_out = [str(parent / f"vol{i:02d}") for i in range(count)]
        child = children.start("venv", sidecar_argv(watch_out, receiver.url(f"/venv-{count}"),
                                                    port, *FLAGS))
        if not wait_for(lambda: _startupz(port), 60, 0.05):
            raise RuntimeError("venv sidecar never started")
        writers[0].write({KEY: "memory-token-1"})
        for path in (f"/image-{count}", f"/venv-{count}"):
            if receiver.wait_count(path, 1, timeout=30) is None:
                raise RuntimeError(f"no reload at {path}")
        time.sleep(0.5)
        inside = proc_sample(sidecar.pid())
        outside = proc_sample(child.pid)
    verdict = "within" if inside.hwm_kib / 1024 <= RSS_BUDGET_MIB else "OVER"
    print(f"  {count:2d} watched director{'y' if count == 1 else 'ies'}, after one handled"
          " rotation")
    print(f"    image: peak RSS {inside.hwm_kib / 1024:5.1f} MiB, {inside.threads} threads"
          f"  ({verdict} the {RSS_BUDGET_MIB:g} MiB budget;"
          f" {inside.hwm_kib / outside.hwm_kib:.2f}x the venv)")
    print(f"    venv:  peak RSS {outside.hwm_kib / 1024:5.1f} MiB, {outside.threads} threads")
    containers.remove_all()


def _where_memory_goes(containers: Containers) -> None:
    result = containers.one_shot("python", "-c", _IMPORTS_PROBE)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    steps = json.loads(result.stdout)
    print("  where the memory goes, inside the image: RSS of one interpreter as it imports")
    print("  what the sidecar imports (each line: what it adds beyond the lines above)")
    previous = 0.0
    for what, mib in steps:
        print(f"    {what:<44} {mib:5.1f} MiB  (+{mib - previous:4.1f})")
        previous = mib


def main() -> None:
    reason = why_not()
    if reason is not None:
        print(f"image benchmark skipped: {reason}")
        return
    print(f"The sidecar's image against the same sidecar from a venv ({mode_note()})")
    t0 = time.monotonic()
    image = build_image()
    print(f"  make image: {time.monotonic() - t0:.1f} s (cached inputs: seconds)")
    _sizes(image)
    containers = Containers(image)
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp, Receiver() as receiver:
        os.chmod(tmp, 0o755)
        try:
            _start_times(containers, Path(tmp), receiver)
            for count in (1, 20):
                _memory(containers, Path(tmp), receiver, count)
            _where_memory_goes(containers)
        finally:
            containers.remove_all()


if __name__ == "__main__":
    main()
