"""The sidecar as users run it: ``python -m agentos_secrets sidecar`` in its own process.

Real inotify on a volume written by the kubelet AtomicWriter fake, real HTTP to a
loopback webhook, real signals to the sidecar. Small ``--debounce``/``--resync``/backoff
values keep each test to a few seconds; waits poll for an outcome with a generous
deadline and never assert on timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.testing import AtomicWriter
from agentos_secrets.watch import combine, digest

pytestmark = pytest.mark.e2e

DEADLINE = 15.0
FAST = [
    "--debounce", "0.1", "--max-wait", "1", "--min-interval", "0", "--resync", "0.5",
    "--backoff-initial", "0.05", "--backoff-max", "0.4", "--timeout", "2",
]


def _wait(predicate, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Sidecar:
    """One sidecar process; its stderr (JSON lines) goes to a file we can read."""

    def __init__(self, tmp_path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = tmp_path / f"sidecar-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # closed in stop() or by the fixture
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentos_secrets", "sidecar", *args,
             "--listen", "127.0.0.1:0"],
            stdout=self._log, stderr=self._log, env={**os.environ, **(env or {})},
        )
        self.url = ""
        try:
            _wait(self._listening, "the sidecar to listen")
        except BaseException:
            # A sidecar that never listened must not outlive the failed test.
            self.proc.kill()
            self.stop()
            raise

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.text()
        for entry in self.lines():
            if entry.get("msg") == "sidecar starting" and entry.get("listen"):
                self.url = "http://" + entry["listen"]
                return True
        return False

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[dict]:
        out = []
        for line in self.text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def logged(self, msg: str) -> int:
        return sum(1 for entry in self.lines() if entry.get("msg") == msg)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self) -> None:
        _wait(self.ready, "/readyz")

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=2).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                if line.split(" ")[0] == name or "{" in name:
                    return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        finally:
            self._log.close()
        return code


@pytest.fixture
def volume(tmp_path) -> AtomicWriter:
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"AGENTOS_SERVICE_TOKEN": "token-0", "AGENTOS_SIGNING_KEY": "key-0"})
    return writer


@pytest.fixture
def sidecars(tmp_path) -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for sidecar in started:
        if sidecar.proc.poll() is None:
            sidecar.proc.kill()
            sidecar.proc.wait(5)
        sidecar._log.close()


def _start(sidecars, tmp_path, volume, webhook, *extra: str, env=None) -> Sidecar:
    sidecar = Sidecar(
        tmp_path,
        ["--watch", volume.target_dir, "--action", "http", "--url", webhook.url,
         "--state-file", str(tmp_path / "state.json"), *FAST, *extra],
        env=env,
    )
    sidecars.append(sidecar)
    sidecar.wait_ready()
    return sidecar


def _fingerprint_of(directory: str) -> str:
    return fingerprint_bytes(combine([digest(directory)]))


def test_one_action_per_real_change_and_none_for_noise(tmp_path, volume, webhook, sidecars):
    sidecar = _start(sidecars, tmp_path, volume, webhook)
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(1)
    key = os.path.join(volume.target_dir, "AGENTOS_SERVICE_TOKEN")
    os.utime(key)
    os.chmod(key, 0o600)
    assert volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"}) \
        is False
    for _ in range(50):  # the app reading its secrets
        with open(key) as handle:
            handle.read()
    rechecks = sidecar.metric("agentos_secrets_sidecar_rechecks_total")
    _wait(lambda: sidecar.metric("agentos_secrets_sidecar_rechecks_total") >= rechecks + 3,
          "three re-checks")
    assert len(webhook.requests) == 1
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-2", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(2)
    assert sidecar.stop() == 0
    assert len(webhook.requests) == 2
    assert sidecar.logged("sidecar stopped") == 1
    with open(tmp_path / "state.json") as handle:
        assert json.load(handle)["fingerprint"] == _fingerprint_of(volume.target_dir)


def test_three_keys_changed_half_a_second_apart_give_one_action(
    tmp_path, volume, webhook, sidecars
):
    sidecar = _start(sidecars, tmp_path, volume, webhook, "--debounce", "1", "--max-wait", "5")
    payload = {"AGENTOS_SERVICE_TOKEN": "token-0", "AGENTOS_SIGNING_KEY": "key-0"}
    for key, value in (("AGENTOS_SERVICE_TOKEN", "t1"), ("AGENTOS_SIGNING_KEY", "k1"),
                       ("AGENTOS_FED_SHARED_SECRET", "f1")):
        payload[key] = value
        volume.write(payload)
        time.sleep(0.5)
    assert webhook.wait_for(1)
    changes = sidecar.metric("agentos_secrets_sidecar_changes_detected_total")
    rechecks = sidecar.metric("agentos_secrets_sidecar_rechecks_total")
    _wait(lambda: sidecar.metric("agentos_secrets_sidecar_rechecks_total") >= rechecks + 3,
          "three re-checks")
    assert len(webhook.requests) == 1
    # at least three confirmed changes (a new key's symlink may add one), one action
    assert changes >= 3


def test_webhook_failing_five_times_then_succeeding(tmp_path, volume, webhook, sidecars):
    webhook.responder = lambda n: 503 if n < 5 else 200
    sidecar = _start(sidecars, tmp_path, volume, webhook)
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(6)
    _wait(lambda: sidecar.metric(
        'agentos_secrets_sidecar_actions_total{kind="http",result="success"}') == 1,
        "one success")
    assert sidecar.metric(
        'agentos_secrets_sidecar_actions_total{kind="http",result="retryable_error"}') == 5
    assert sidecar.metric("agentos_secrets_sidecar_pending_change") == 0
    with open(tmp_path / "state.json") as handle:
        assert json.load(handle)["fingerprint"] == _fingerprint_of(volume.target_dir)
    time.sleep(1)
    assert len(webhook.requests) == 6


def test_a_hung_webhook_times_out_and_is_retried(tmp_path, volume, webhook, sidecars):
    webhook.responder = lambda n: 0 if n == 0 else 200  # the first request hangs
    sidecar = _start(sidecars, tmp_path, volume, webhook, "--timeout", "0.5")
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(2)
    _wait(lambda: sidecar.metric(
        'agentos_secrets_sidecar_actions_total{kind="http",result="success"}') == 1,
        "the retry to succeed")
    assert any("timed out" in (e.get("error") or "") for e in sidecar.lines())


def test_ten_kills_without_change_give_nothing_a_change_while_down_gives_one(
    tmp_path, volume, webhook, sidecars
):
    for _ in range(10):
        sidecar = _start(sidecars, tmp_path, volume, webhook)
        sidecar.stop(signal.SIGKILL)
    assert webhook.requests == []
    volume.write({"AGENTOS_SERVICE_TOKEN": "rotated-while-down", "AGENTOS_SIGNING_KEY": "k"})
    sidecar = _start(sidecars, tmp_path, volume, webhook)
    assert webhook.wait_for(1)
    _wait(lambda: sidecar.logged("action succeeded") == 1, "the action to be logged")
    sidecar.stop(signal.SIGKILL)
    sidecar = _start(sidecars, tmp_path, volume, webhook)  # and not again after that
    time.sleep(1)
    assert sidecar.stop() == 0
    assert len(webhook.requests) == 1


def test_storm_breaker_holds_then_applies_the_newest(tmp_path, volume, webhook, sidecars):
    sidecar = _start(sidecars, tmp_path, volume, webhook, "--debounce", "0", "--max-wait", "0",
                     "--min-interval", "3", "--send-fingerprint", "true")
    volume.write({"AGENTOS_SERVICE_TOKEN": "storm-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(1)
    for i in range(2, 7):
        volume.write({"AGENTOS_SERVICE_TOKEN": f"storm-{i}", "AGENTOS_SIGNING_KEY": "key-0"})
        time.sleep(0.05)
    _wait(lambda: sidecar.metric("agentos_secrets_sidecar_storm_breaker_holding") == 1,
          "the breaker to hold")
    health = httpx.get(sidecar.url + "/healthz").json()
    assert health["storm_breaker_holding"] is True and health["status"] == "ok"
    assert len(webhook.requests) == 1
    assert webhook.wait_for(2)
    newest = json.loads(webhook.requests[1].body)["fingerprint"]
    assert newest == _fingerprint_of(volume.target_dir)
    time.sleep(0.5)
    assert len(webhook.requests) == 2


def test_the_canary_appears_in_no_log_metric_or_response(
    tmp_path, volume, webhook, sidecars, canary
):
    token = tmp_path / "token"
    token.write_text(canary.value)
    os.chmod(token, 0o600)
    sidecar = _start(
        sidecars, tmp_path, volume, webhook,
        "--header-file", f"Authorization={token}", "--log-level", "DEBUG",
        env={"AGENTOS_METRICS_REQUIRE_AUTH": "1", "AGENTOS_SERVICE_TOKEN_FILE": str(token)},
    )
    volume.write({"AGENTOS_SERVICE_TOKEN": canary.value, "AGENTOS_SIGNING_KEY": canary.value})
    assert webhook.wait_for(1)
    auth = {"Authorization": f"Bearer {canary.value}"}
    metrics = httpx.get(sidecar.url + "/metrics", headers=auth)
    assert metrics.status_code == 200
    responses = [metrics.text] + [
        httpx.get(sidecar.url + path).text for path in ("/healthz", "/readyz", "/metrics")
    ]
    assert sidecar.stop() == 0
    canary.assert_absent(sidecar.text(), webhook.requests[0].body, *responses)
    canary.assert_absent((tmp_path / "state.json").read_text())


def test_metrics_accept_a_token_staged_as_previous_in_the_volume(tmp_path, webhook, sidecars):
    # The rotation runbook's stage phase: the Secret gains AGENTOS_SERVICE_TOKEN_PREVIOUS
    # (the next token). A scraper switched to it before this pod's volume has the new
    # AGENTOS_SERVICE_TOKEN must still get in: the sidecar's Loader searches its volume.
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({"AGENTOS_SERVICE_TOKEN": "old-token-1",
                  "AGENTOS_SERVICE_TOKEN_PREVIOUS": "next-token-2"})
    token_file = os.path.join(writer.target_dir, "AGENTOS_SERVICE_TOKEN")
    sidecar = _start(sidecars, tmp_path, writer, webhook, env={
        "AGENTOS_METRICS_REQUIRE_AUTH": "1", "AGENTOS_SERVICE_TOKEN_FILE": token_file})

    def scrape(token: str) -> int:
        return httpx.get(sidecar.url + "/metrics",
                         headers={"Authorization": f"Bearer {token}"}).status_code

    assert scrape("old-token-1") == 200
    assert scrape("next-token-2") == 200
    assert scrape("another-token") == 401
    assert sidecar.stop() == 0


def test_a_plain_file_gives_a_layout_warning_and_a_metric(tmp_path, webhook, sidecars):
    plain = tmp_path / "subpath-like"
    plain.write_text("v")
    sidecar = Sidecar(tmp_path, ["--watch", str(plain), "--url", webhook.url])
    sidecars.append(sidecar)
    sidecar.wait_ready()
    assert sidecar.metric(
        'agentos_secrets_sidecar_configuration_warnings{reason="layout_cannot_rotate"}') == 1
    assert sidecar.logged("watched path may not rotate") == 1
    assert sidecar.stop() == 0


def test_configuration_errors_exit_2_naming_the_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "agentos_secrets", "sidecar", "--watch", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "AGENTOS_SIDECAR_URL": ""},
    )
    assert result.returncode == 2
    assert "--url (AGENTOS_SIDECAR_URL)" in result.stderr


HUP_COUNTER = r"""
import signal, sys, time
out = sys.argv[2]
count = 0
def hup(signum, frame):
    global count
    count += 1
    open(out, "w").write(str(count))
signal.signal(signal.SIGHUP, hup)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def app(tmp_path):
    """A stand-in for the app: counts SIGHUPs; the marker makes its command line unique."""
    marker = f"agentos-app-{time.monotonic_ns()}"
    out = tmp_path / "hups"
    proc = subprocess.Popen([sys.executable, "-c", HUP_COUNTER, marker, str(out)])
    _wait(lambda: os.path.exists(f"{out}.ready"), "the app to start")
    yield proc, marker, out
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def test_signal_action_reaches_the_app_once_per_change(tmp_path, volume, sidecars, app):
    proc, marker, out = app
    sidecar = Sidecar(tmp_path, ["--watch", volume.target_dir, "--action", "signal",
                                 "--target-cmdline", marker, *FAST])
    sidecars.append(sidecar)
    sidecar.wait_ready()
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    _wait(lambda: out.exists() and out.read_text() == "1", "one SIGHUP")
    os.utime(os.path.join(volume.target_dir, "AGENTOS_SERVICE_TOKEN"))
    rechecks = sidecar.metric("agentos_secrets_sidecar_rechecks_total")
    _wait(lambda: sidecar.metric("agentos_secrets_sidecar_rechecks_total") >= rechecks + 2,
          "two re-checks")
    assert out.read_text() == "1" and proc.poll() is None
    assert sidecar.stop() == 0


def test_restart_action_terminates_the_app(tmp_path, volume, sidecars, app):
    proc, marker, _ = app
    sidecar = Sidecar(tmp_path, ["--watch", volume.target_dir, "--action", "restart",
                                 "--target-cmdline", marker, "--grace-period", "5", *FAST])
    sidecars.append(sidecar)
    sidecar.wait_ready()
    volume.write({"AGENTOS_SERVICE_TOKEN": "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert proc.wait(DEADLINE) == -signal.SIGTERM
    _wait(lambda: sidecar.logged("action succeeded") == 1, "the restart to be logged")
    # the app is gone (the kubelet would restart it): not ready, with the reason
    _wait(lambda: any("no process" in reason for reason in
                      httpx.get(sidecar.url + "/readyz").json()["reasons"]), "not ready")
    assert httpx.get(sidecar.url + "/startupz").status_code == 200
    assert sidecar.stop() == 0
