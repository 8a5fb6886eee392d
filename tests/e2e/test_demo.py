"""The demos, run as a user runs them: a subprocess, real processes, real inotify.

``make demo`` (examples/rotation_demo.py): the orchestrated rotation on 3 replicas, one
rotation to the end and one SIGKILLed and resumed, 0 rejected requests.
``make demo-sidecar`` (examples/demo.py): the single-pod sidecar demo.

The first token is the canary (``AGENTOS_DEMO_TOKEN``): it is read by the services, the
sidecars hash it and the senders send it hundreds of times a second, yet it must appear
in none of a demo's output. A demo interrupted (SIGINT, SIGTERM) or killed (SIGKILL) must
leave no process behind either.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TIMELINE = (
    "ok    0 reload(s) in the",
    "ROTATION: AGENTOS_SERVICE_TOKEN fp1:",
    "sidecar detected the change after",
    "ok    reload accepted by the service",
    "ok    old token still accepted",
    "ok    new token accepted",
    "ok    old token rejected after the grace window (401)",
    "ok    1 reload(s) for 1 rotation",
    "ok    sidecar /metrics: 401 without a token, 200 with the current one",
    "ok    stopped every process started",
    "result: OK",
)


def _env(token: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AGENTOS_DEMO_TOKEN"] = token
    env["PYTHONPATH"] = str(ROOT)
    env.pop("AGENTOS_SERVICE_TOKEN", None)
    return env


def _processes_using(marker: str) -> list[int]:
    """Pids (other than ours) whose command line mentions ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry))
    return found


def _describe(pids: list[int]) -> list[str]:
    """Each pid's state and command line, to say which process was left behind."""
    described = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        described.append(f"{pid} [{state}] {cmdline[:200]}")
    return described


def _wait_gone(marker: str, timeout: float = 30.0) -> list[int]:
    """Pids still using ``marker`` after ``timeout`` seconds. The children get SIGTERM when
    the demo dies, and the sidecar may take up to its ``--shutdown-timeout`` (20 s by
    default) to end: the wait allows that bound and a margin for a loaded machine."""
    deadline = time.monotonic() + timeout
    left = _processes_using(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _processes_using(marker)
    return left


ROTATION_TIMELINE = (
    "volumes and kubeconfig under",
    "ROTATION 1: agentos-secrets rotate AGENTOS_SERVICE_TOKEN --generate",
    "| ",  # rotate's own progress output, indented
    "ok    rotate exited 0 after",
    "ok    every pod's volume holds AGENTOS_SERVICE_TOKEN fp1:",
    "rotation 1: gates held stage",
    "ok    rotate SIGKILLed in the switch phase (exit -9); the Secret records"
    " rotate.agentos.dev/phase=switched",
    "ok    rotate --resume exited 0 after",
    "rotation 2: gates held stage",
    "ok    stopped every process started",
    "result: OK",
)


def test_make_demo_rotates_3_replicas_with_0_rejected_requests(canary):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "examples.rotation_demo"],
        cwd=ROOT,
        env=_env(canary.value),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in ROTATION_TIMELINE:
        assert line in result.stdout, f"missing timeline line {line!r}:\n{output}"
    assert "FAIL" not in result.stdout
    senders = re.search(
        r"senders: (\d+) requests, (\d+) accepted, (\d+) rejected, (\d+) errors", output
    )
    assert senders is not None, output
    requests, accepted, rejected, errors = map(int, senders.groups())
    assert rejected == 0 and errors == 0 and requests == accepted and requests > 2000
    fingerprints = set(re.findall(r"holds AGENTOS_SERVICE_TOKEN (fp1:[0-9a-f]{16})", output))
    assert len(fingerprints) == 2, "two rotations, two new tokens"
    assert elapsed < 90, "the demo stays short (about 30 s on a quiet machine)"
    workdir = re.search(r"volumes and kubeconfig under (\S+)", result.stdout)
    assert workdir is not None
    assert _processes_using(workdir.group(1)) == []
    assert not Path(workdir.group(1)).exists(), "the volumes and the kubeconfig are removed"
    canary.assert_absent(result.stdout, result.stderr)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_rotation_demo_leaves_no_process_behind(canary, how):
    demo = subprocess.Popen(
        [sys.executable, "-m", "examples.rotation_demo"],
        cwd=ROOT,
        env=_env(canary.value),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workdir = None
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            match = re.search(r"volumes and kubeconfig under (\S+)", line)
            if match:
                workdir = match.group(1)
            if "| " in line and "gate staged" in line:
                break  # rotate is running, inside its first gate
        assert workdir is not None
        running = _processes_using(workdir)
        # 3 services, 3 sidecars, 3 senders and rotate
        assert len(running) >= 10, "every pod's processes and rotate are running"
        demo.send_signal(how)
        out, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode != 0
    # twelve processes stop gracefully on the SIGTERM their parent's death sends; on a
    # loaded machine that can take a while
    left = _wait_gone(workdir)
    assert left == [], f"left behind after {how.name}: {_describe(left)}"
    if how != signal.SIGKILL:
        assert not Path(workdir).exists(), "the volumes and the kubeconfig are removed"
    shutil.rmtree(workdir, ignore_errors=True)  # SIGKILL gives the demo no chance to
    canary.assert_absent(out, err)


def test_demo_rotates_without_a_rejected_request_and_leaks_nothing(canary):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        env=_env(canary.value),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in TIMELINE:
        assert line in result.stdout, f"missing timeline line {line!r}:\n{output}"
    client = re.search(r"client: (\d+) requests at 200/s, (\d+) accepted, (\d+) rejected", output)
    assert client is not None, output
    requests, accepted, rejected = map(int, client.groups())
    assert rejected == 0 and requests == accepted and requests > 300
    assert elapsed < 30, "the demo must finish in under 30 s"
    volume = re.search(r"written kubelet-style at (\S+)", result.stdout)
    assert volume is not None
    assert _processes_using(volume.group(1)) == []
    assert not Path(volume.group(1)).exists(), "the temporary volume is removed"
    canary.assert_absent(result.stdout, result.stderr)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_sidecar_demo_leaves_no_process_behind(canary, how):
    demo = subprocess.Popen(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        env=_env(canary.value),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    volume = None
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            match = re.search(r"written kubelet-style at (\S+)", line)
            if match:
                volume = match.group(1)
            if "client: pid" in line:
                break
        assert volume is not None
        assert len(_processes_using(volume)) >= 3, "service, sidecar and client are running"
        demo.send_signal(how)
        out, err = demo.communicate(timeout=20)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode != 0
    left = _wait_gone(volume)
    assert left == [], f"left behind after {how.name}: {_describe(left)}"
    canary.assert_absent(out, err)
