"""The rotation demo: the whole loop on one machine, in about ten seconds.

What runs (every part real except the kubelet, played by ``AtomicWriter``):

* a temporary Secret volume holding the three AgentOS keys, written exactly as the
  kubelet's atomic writer writes it (hidden generation dirs, one ``..data`` rename);
* ``examples.service``: an AgentOS-like HTTP service using the Loader, with a protected
  endpoint checked by ``Loader.verify`` (grace window ``--grace``, 3 s here) and
  ``POST /-/reload``;
* ``agentos-secrets sidecar --action http``: the real sidecar process, watching the volume
  and calling the reload endpoint once per real change;
* ``examples.load``: a client calling the service at 200 requests per second with the token
  it last read from the volume (re-read every 100 ms through its own Loader).

The demo touches the volume without changing it (no reload expected), rotates
``AGENTOS_SERVICE_TOKEN``, and prints a timeline: when the sidecar detected the change,
when the service accepted the reload, that the old token is still accepted inside the
grace window and rejected after it, and how many of the client's requests were rejected
(the goal is none). It exits non-zero when any of that did not happen, and stops every
process it started, also on Ctrl-C or failure. Secret values are never printed: only
fingerprints. ``AGENTOS_DEMO_TOKEN`` sets the first token (tests inject a canary).

    python -m examples.demo        (or: make demo)
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.testing import AtomicWriter
from examples.launch import start_client, start_service
from examples.procs import Child, Children, Line, python_module

TOKEN = "AGENTOS_SERVICE_TOKEN"
GRACE_S = 3.0
RATE = 200.0
CLIENT_REFRESH_S = 0.1
QUIET_S = 1.5
STARTUP_TIMEOUT_S = 15.0
RELOAD_TIMEOUT_S = 15.0



class Timeline:
    """Prints events as they happen, in seconds since the demo started."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.failures: list[str] = []

    def say(self, text: str, at: float | None = None) -> None:
        offset = (time.monotonic() if at is None else at) - self.start
        print(f"  {offset:7.3f} s  {text}", flush=True)

    def check(self, ok: bool, text: str, at: float | None = None) -> bool:
        self.say(("ok    " if ok else "FAIL  ") + text, at)
        if not ok:
            self.failures.append(text)
        return ok


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """One request to the service; the token is sent, never printed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        return response.status, document if isinstance(document, dict) else {}
    finally:
        conn.close()


def _wait(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _reloads(port: int) -> list[dict[str, Any]]:
    status, document = _get(port, "/-/status")
    reloads = document.get("reloads") if status == 200 else None
    return reloads if isinstance(reloads, list) else []


def _is_detection(line: Line, after: float) -> bool:
    """The sidecar's JSON log line "content change detected", after the rotation.

    Its arrival time here is the detection time (the pipe adds microseconds).
    """
    if line.at < after:
        return False
    record = line.json()
    return record is not None and "change detected" in str(record.get("msg", ""))


def _start_service(children: Children, volume: str, timeline: Timeline) -> tuple[Child, int]:
    service, port = start_service(children, volume, GRACE_S)
    timeline.say(f"service up: pid {service.pid}, http://127.0.0.1:{port}, grace {GRACE_S:g} s")
    return service, port


def _start_sidecar(
    children: Children, volume: str, state_dir: str, port: int, timeline: Timeline
) -> tuple[Child, int]:
    listen = _free_port()
    # As in the AgentOS manifests: /metrics needs the service token, read through the Loader.
    env = dict(os.environ)
    env["AGENTOS_METRICS_REQUIRE_AUTH"] = "1"
    env["AGENTOS_SERVICE_TOKEN_FILE"] = os.path.join(volume, TOKEN)
    env.pop(TOKEN, None)
    sidecar = children.start(
        "sidecar",
        python_module(
            "agentos_secrets",
            "sidecar",
            "--watch", volume,
            "--action", "http",
            "--url", f"http://127.0.0.1:{port}/-/reload",
            "--state-file", os.path.join(state_dir, "state.json"),
            "--listen", f"127.0.0.1:{listen}",
            "--log-format", "json",
        ),
        env=env,
    )  # fmt: skip

    def ready() -> bool:
        if sidecar.process.poll() is not None:
            raise RuntimeError("the sidecar exited:\n" + sidecar.output())
        try:
            return _get(listen, "/readyz")[0] == 200
        except OSError:
            return False

    if not _wait(ready, STARTUP_TIMEOUT_S, 0.05):
        raise RuntimeError("the sidecar did not become ready:\n" + sidecar.output())
    timeline.say(
        f"sidecar ready: pid {sidecar.pid}, --action http, /readyz on port {listen},"
        " default debounce 1 s"
    )
    return sidecar, listen


def _rotate_and_watch(
    writer: AtomicWriter,
    payload: dict[str, str],
    old: str,
    new: str,
    port: int,
    sidecar: Child,
    timeline: Timeline,
) -> None:
    reloads_before = len(_reloads(port))
    payload[TOKEN] = new
    rotated_at = time.monotonic()
    writer.write(payload)
    timeline.say(
        f"ROTATION: {TOKEN} {fingerprint_bytes(old.encode())} -> "
        f"{fingerprint_bytes(new.encode())} (one rename of ..data)",
        rotated_at,
    )
    new_fp = fingerprint_bytes(new.encode())

    def reloaded() -> bool:
        fresh = _reloads(port)[reloads_before:]
        return any(r.get("fingerprints", {}).get(TOKEN) == new_fp for r in fresh)

    detected = sidecar.wait_line(lambda ln: _is_detection(ln, rotated_at), 5.0)
    if detected is not None:
        ms = (detected.at - rotated_at) * 1000
        timeline.say(f"sidecar detected the change after {ms:.1f} ms", detected.at)
    if not _wait(reloaded, RELOAD_TIMEOUT_S):
        timeline.check(False, "no reload with the new token reached the service")
        return
    reload_at = float(_reloads(port)[-1]["t"])
    timeline.check(
        True,
        f"reload accepted by the service {(reload_at - rotated_at) * 1000:.0f} ms after the"
        " rotation (POST /-/reload -> 200; the debounce waits for quiet first)",
        reload_at,
    )
    status, body = _get(port, "/v1/models", old)
    timeline.check(
        status == 200 and body.get("token") == "previous",
        f"old token still accepted ({status}, as the previous value: inside the"
        f" {GRACE_S:g} s grace window)",
    )
    status, body = _get(port, "/v1/models", new)
    timeline.check(
        status == 200 and body.get("token") == "current", f"new token accepted ({status})"
    )
    time.sleep(max(0.0, rotated_at + GRACE_S + 0.6 - time.monotonic()))
    status, _ = _get(port, "/v1/models", old)
    timeline.check(status == 401, f"old token rejected after the grace window ({status})")
    count = len(_reloads(port)) - reloads_before
    timeline.check(count == 1, f"{count} reload(s) for 1 rotation")


def _metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of the Prometheus text format, by name and exact labels."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{wanted}}}" if wanted else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _sidecar_metrics(port: int, token: str, timeline: Timeline) -> None:
    """``/metrics`` refuses a caller without the service token and counts one success."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        anonymous = conn.getresponse()
        anonymous.read()
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    finally:
        conn.close()
    prefix = "agentos_secrets_sidecar_"
    success = _metric(text, prefix + "actions_total", kind="http", result="success")
    pending = _metric(text, prefix + "pending_change")
    timeline.check(
        anonymous.status == 401 and response.status == 200 and success == 1 and pending == 0,
        f"sidecar /metrics: {anonymous.status} without a token, {response.status} with the"
        f" current one; actions succeeded {success:g}, pending change {pending:g}"
        if success is not None and pending is not None
        else f"sidecar /metrics: {anonymous.status} / {response.status}, counters missing",
    )


def _touch_without_change(volume: str, port: int, timeline: Timeline) -> None:
    """Touch, chmod and read every key: the content is the same, so nothing may happen."""
    before = len(_reloads(port))
    for key in os.listdir(volume):
        if key.startswith("."):
            continue
        path = os.path.join(volume, key)
        os.utime(path)
        os.chmod(path, 0o644)
        with open(path, "rb") as handle:
            handle.read()
    timeline.say("touched, chmod-ed and read every key (same content)")
    time.sleep(QUIET_S)
    count = len(_reloads(port)) - before
    timeline.check(count == 0, f"{count} reload(s) in the {QUIET_S:g} s after that")


def _client_summary(children: Children, client: Child, timeline: Timeline) -> None:
    children.stop(client)
    line = client.wait_line(lambda ln: '"load-summary"' in ln.text, 5.0)
    if line is None:
        timeline.check(False, "the client printed no summary:\n" + client.output())
        return
    summary = json.loads(line.text)
    timeline.check(
        summary["rejected"] == 0 and summary["errors"] == 0 and summary["requests"] > 0,
        f"client: {summary['requests']} requests at {RATE:g}/s, {summary['accepted']} accepted,"
        f" {summary['rejected']} rejected, {summary['errors']} errors"
        f" (latency p50 {summary['latency_ms_p50']} ms, p99 {summary['latency_ms_p99']} ms)",
    )


def run(timeline: Timeline) -> None:
    first = os.environ.get("AGENTOS_DEMO_TOKEN") or f"demo-{secrets.token_urlsafe(18)}"
    second = f"{first}-rotated-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="agentos-demo-") as tmp, Children() as children:
        volume = os.path.join(tmp, "secrets")
        writer = AtomicWriter(volume)
        payload = {
            TOKEN: first,
            "AGENTOS_FED_SHARED_SECRET": f"demo-fed-{secrets.token_urlsafe(12)}",
            "AGENTOS_SIGNING_KEY": f"demo-signing-{secrets.token_urlsafe(24)}",
        }
        writer.write(payload)
        timeline.say(f"Secret volume written kubelet-style at {volume} (3 keys)")
        service, port = _start_service(children, volume, timeline)
        sidecar, metrics_port = _start_sidecar(children, volume, tmp, port, timeline)
        client = start_client(children, port, volume, RATE, CLIENT_REFRESH_S)
        timeline.say(
            f"client: pid {client.pid}, {RATE:g} req/s, re-reads its token every"
            f" {CLIENT_REFRESH_S * 1000:.0f} ms"
        )
        _touch_without_change(volume, port, timeline)
        _rotate_and_watch(writer, payload, first, second, port, sidecar, timeline)
        _sidecar_metrics(metrics_port, second, timeline)
        _client_summary(children, client, timeline)
        pids = [c.pid for c in children.started]
        children.stop_all()
        for child in (sidecar, service):
            if child.process.returncode not in (0, -signal.SIGTERM):
                timeline.check(False, f"{child.name} exited with {child.process.returncode}")
        left = children.alive()
        timeline.check(not left, f"stopped every process started (pids {pids})")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    print("AgentOS secrets: rotation demo (kubelet-style volume, service, sidecar, client)")
    timeline = Timeline()
    try:
        run(timeline)
    except RuntimeError as exc:
        timeline.check(False, str(exc))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    if timeline.failures:
        print(f"result: FAILED ({len(timeline.failures)} check(s) failed)")
        return 1
    print(f"result: OK in {time.monotonic() - timeline.start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
