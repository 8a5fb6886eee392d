"""Red team against a real sidecar process: every stderr line is one redacted JSON object
whatever clients do, and SIGTERM during a hung ``exec`` ends within the budget.

Before the fixes: ThreadingHTTPServer printed a raw traceback per reset connection, a
config error was a bare text line, and a SIGTERM waited out the 60 s exec timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import httpx
import pytest

from agentos_secrets.testing import AtomicWriter

pytestmark = pytest.mark.e2e

SECRET = "canary-Zq9-do-not-leak-7f3e1c"


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start(tmp_path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, object]:
    log = tmp_path / "stderr.log"
    handle = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentos_secrets", "sidecar", *args,
         "--listen", "127.0.0.1:0", "--log-format", "json"],
        stdout=handle, stderr=handle, env={**os.environ, **env},
    )
    return proc, handle


def _url(log_path) -> str | None:
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("msg") == "sidecar starting" and entry.get("listen"):
                return "http://" + entry["listen"]
    return None


def _assert_json_lines(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # raises on a raw traceback or a text line
        assert isinstance(entry, dict)
        entries.append(entry)
    assert SECRET not in text
    return entries


def test_resets_garbage_and_warnings_leave_only_json_lines(tmp_path):
    volume = AtomicWriter(tmp_path / "vol")
    volume.write({"AGENTOS_SERVICE_TOKEN": SECRET})
    env = {"AGENTOS_METRICS_REQUIRE_AUTH": "enabled",  # not a boolean: fail closed, warn
           "PYTHONWARNINGS": "always"}
    proc, handle = _start(tmp_path, ["--watch", volume.target_dir, "--action", "exec",
                                     "--exec", "true"], env)
    log = tmp_path / "stderr.log"
    try:
        _wait(lambda: _url(log) is not None, "the sidecar to listen")
        url = _url(log)
        assert url is not None
        host, port = url.removeprefix("http://").rsplit(":", 1)
        for i in range(300):
            sock = socket.create_connection((host, int(port)), timeout=10)
            with contextlib.suppress(OSError):
                if i % 3 == 0:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer "
                                 + SECRET.encode() + b"x\r\n\r\n")
                elif i % 3 == 1:
                    sock.sendall(os.urandom(64) + SECRET.encode() + b"\r\n\r\n")
                else:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # reset, often before the answer is written
        assert httpx.get(url + "/metrics", timeout=10).status_code == 401  # fail closed
        ok = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {SECRET}"},
                       timeout=10)
        assert ok.status_code == 200
        assert 'configuration_warnings{reason="bad_boolean"} 1.0' in ok.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        handle.close()
    entries = _assert_json_lines(log.read_text(errors="replace"))
    assert any("AGENTOS_METRICS_REQUIRE_AUTH" in e["msg"] for e in entries)


def test_a_config_error_is_one_json_line_without_the_value(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "agentos_secrets", "sidecar", "--watch", SECRET,
         "--url", "http://127.0.0.1:1/"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    entries = _assert_json_lines(proc.stderr)
    assert len(entries) == 1 and "--watch" in entries[0]["msg"]


HANG = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a command that ignores SIGTERM
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_sigterm_during_a_hung_exec_exits_within_the_budget(tmp_path):
    volume = AtomicWriter(tmp_path / "vol")
    volume.write({"KEY": "v0"})
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    pids_file = tmp_path / "pids"
    proc, handle = _start(
        tmp_path,
        ["--watch", volume.target_dir, "--action", "exec", "--debounce", "0",
         "--min-interval", "0", "--shutdown-timeout", "2",
         "--exec", f"{sys.executable} {script} {pids_file}"],
        {},
    )
    log = tmp_path / "stderr.log"
    try:
        _wait(lambda: _url(log) is not None, "the sidecar to listen")
        url = _url(log)
        _wait(lambda: httpx.get(url + "/startupz", timeout=5).status_code == 200, "startup")
        volume.write({"KEY": "v1"})  # a rotation: the command starts and hangs
        _wait(pids_file.exists, "the command to start")
        command, grandchild = (int(p) for p in pids_file.read_text().split())
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        handle.close()
    # Generous for a loaded machine; before the fix it took the 60 s exec timeout.
    assert took < 10, took
    assert code == 0
    _wait(lambda: not _alive(command) and not _alive(grandchild), "the command's group to die",
          timeout=5)
    _assert_json_lines(log.read_text(errors="replace"))


def _sigterm_took(proc: subprocess.Popen, handle) -> tuple[float, int]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        handle.close()
    return time.monotonic() - started, code


def test_sigterm_during_a_hung_http_request_exits_within_the_budget(tmp_path, webhook):
    webhook.responder = lambda n: 0  # the app accepts the request and never answers
    volume = AtomicWriter(tmp_path / "vol")
    volume.write({"KEY": "v0"})
    proc, handle = _start(
        tmp_path,
        ["--watch", volume.target_dir, "--action", "http", "--url", webhook.url,
         "--debounce", "0", "--min-interval", "0", "--timeout", "25",
         "--shutdown-timeout", "2"],
        {},
    )
    log = tmp_path / "stderr.log"
    try:
        _wait(lambda: _url(log) is not None, "the sidecar to listen")
        url = _url(log)
        _wait(lambda: httpx.get(url + "/startupz", timeout=5).status_code == 200, "startup")
        volume.write({"KEY": "v1"})
        assert webhook.wait_for(1, timeout=20)
    except BaseException:
        proc.kill()
        raise
    took, code = _sigterm_took(proc, handle)
    assert took < 10, took  # before: the loop thread was joined for 4 x --timeout + 5 s
    assert code == 0
    _assert_json_lines(log.read_text(errors="replace"))


def test_sigterm_during_a_restart_grace_period_exits_within_the_budget(tmp_path):
    target = subprocess.Popen([sys.executable, "-c",
                               "import signal, time; signal.signal(signal.SIGTERM,"
                               " signal.SIG_IGN); print('up', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE)
    try:
        assert target.stdout is not None and target.stdout.readline() == b"up\n"
        pidfile = tmp_path / "app.pid"
        pidfile.write_text(str(target.pid))
        volume = AtomicWriter(tmp_path / "vol")
        volume.write({"KEY": "v0"})
        proc, handle = _start(
            tmp_path,
            ["--watch", volume.target_dir, "--action", "restart", "--target-pidfile",
             str(pidfile), "--grace-period", "300", "--debounce", "0", "--min-interval",
             "0", "--shutdown-timeout", "2"],
            {},
        )
        log = tmp_path / "stderr.log"
        try:
            _wait(lambda: _url(log) is not None, "the sidecar to listen")
            url = _url(log)
            _wait(lambda: httpx.get(url + "/startupz", timeout=5).status_code == 200,
                  "startup")
            volume.write({"KEY": "v1"})  # SIGTERM to the target, which ignores it
            _wait(lambda: httpx.get(url + "/healthz", timeout=5).json()["pending_change"],
                  "the restart to start")
            time.sleep(0.5)  # inside the 300 s grace period now
        except BaseException:
            proc.kill()
            raise
        took, code = _sigterm_took(proc, handle)
        assert took < 10, took  # before: the grace period (300 s) was waited out
        assert code == 0
        _assert_json_lines(log.read_text(errors="replace"))
    finally:
        target.kill()
        target.wait(10)
