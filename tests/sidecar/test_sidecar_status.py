"""``GET /status`` of a real sidecar process on a kubelet-style volume.

Real inotify, real HTTP on loopback, real signals; the webhook (the app's reload
endpoint) fails or succeeds on demand, so each window (mounted changed but not applied,
applied) is reached by an outcome, never by a timing assumption.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import httpx
import pytest
from test_sidecar_realprocess import FAST, Sidecar, _wait

from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.sidecar.server import MetricsAuth
from agentos_secrets.testing import AtomicWriter

pytestmark = pytest.mark.e2e

TOKEN = "AGENTOS_SERVICE_TOKEN"


@pytest.fixture
def volume(tmp_path) -> AtomicWriter:
    writer = AtomicWriter(tmp_path / "vol")
    writer.write({TOKEN: "token-0", "AGENTOS_SIGNING_KEY": "key-0"})
    return writer


@pytest.fixture
def sidecars() -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for sidecar in started:
        if sidecar.proc.poll() is None:
            sidecar.proc.kill()
            sidecar.proc.wait(5)
        sidecar._log.close()


class Switch:
    """The webhook's answer: 503 while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, n: int) -> int:
        return 503 if self.failing else 200


def _start(sidecars, tmp_path, volume, *args: str, env=None) -> Sidecar:
    sidecar = Sidecar(
        tmp_path,
        ["--watch", volume.target_dir, "--state-file", str(tmp_path / "state.json"),
         *FAST, *args],
        env=env,
    )
    sidecars.append(sidecar)
    sidecar.wait_ready()
    if not (env or {}).get("AGENTOS_METRICS_REQUIRE_AUTH"):
        _derived(sidecar)
    return sidecar


def _derived(sidecar: Sidecar) -> Sidecar:
    """Wait until no key is still ``deriving`` (the first turn after start-up)."""
    _wait(lambda: all(k["reason"] != "deriving" for k in _status(sidecar)["keys"]),
          "the per-key fingerprints")
    return sidecar


def _status(sidecar: Sidecar, headers: dict[str, str] | None = None) -> dict:
    response = httpx.get(sidecar.url + "/status", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _key(status: dict, name: str = TOKEN) -> dict:
    return next(k for k in status["keys"] if k["name"] == name)


def fp(value: str) -> str:
    return fingerprint_bytes(value.encode())


def test_mounted_changes_first_then_applied_after_the_action_succeeds(
    tmp_path, volume, webhook, sidecars
):
    switch = Switch()
    webhook.responder = switch
    sidecar = _start(sidecars, tmp_path, volume, "--action", "http", "--url", webhook.url)
    status = _status(sidecar)
    assert status["version"] == 1 and status["action"] == "http" and status["ready"] is True
    assert status["pod"] and status["truncated"] is False and status["pending"] is False
    assert status["keys"] == [
        {"name": "AGENTOS_SERVICE_TOKEN", "watch": 0, "mounted": fp("token-0"),
         "applied": fp("token-0"), "pending": False, "reason": None},
        {"name": "AGENTOS_SIGNING_KEY", "watch": 0, "mounted": fp("key-0"),
         "applied": fp("key-0"), "pending": False, "reason": None},
    ]
    assert status["last_action"] == {"result": None, "at": None, "attempts": 0, "error": None}

    switch.failing = True
    volume.write({TOKEN: "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    assert webhook.wait_for(2)  # failed, and retried
    _wait(lambda: _status(sidecar)["last_action"]["result"] == "failed", "a failed action")
    status = _status(sidecar)
    assert _key(status)["mounted"] == fp("token-1")
    assert _key(status)["applied"] == fp("token-0")  # the app has not taken it up
    assert _key(status)["pending"] is True and status["pending"] is True
    assert _key(status, "AGENTOS_SIGNING_KEY")["pending"] is False
    assert status["last_action"]["attempts"] >= 1
    assert "503" in status["last_action"]["error"]
    assert sidecar.metric(
        'agentos_secrets_sidecar_key_pending{key="AGENTOS_SERVICE_TOKEN",watch="0"}') == 1

    switch.failing = False
    _wait(lambda: _key(_status(sidecar))["applied"] == fp("token-1"), "applied to follow")
    status = _status(sidecar)
    assert status["pending"] is False and _key(status)["pending"] is False
    assert status["last_action"]["result"] == "ok" and status["last_action"]["error"] is None
    assert status["last_action"]["attempts"] >= 2
    assert status["last_action"]["at"].endswith("Z")
    assert sidecar.stop() == 0


def test_a_restart_keeps_what_was_applied(tmp_path, volume, webhook, sidecars):
    switch = Switch()
    webhook.responder = switch
    args = ("--action", "http", "--url", webhook.url)
    sidecar = _start(sidecars, tmp_path, volume, *args)
    switch.failing = True
    volume.write({TOKEN: "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    _wait(lambda: _status(sidecar)["last_action"]["result"] == "failed", "a failed action")
    assert sidecar.stop() == 0

    again = _start(sidecars, tmp_path, volume, *args)  # the app still has token-0
    status = _status(again)
    assert _key(status)["applied"] == fp("token-0")
    assert _key(status)["mounted"] == fp("token-1")
    assert _key(status)["pending"] is True
    switch.failing = False
    _wait(lambda: _key(_status(again))["applied"] == fp("token-1"), "applied to follow")
    assert again.stop() == 0

    third = _start(sidecars, tmp_path, volume, *args)
    status = _status(third)
    assert _key(status)["applied"] == _key(status)["mounted"] == fp("token-1")
    assert status["pending"] is False
    requests = len(webhook.requests)
    assert third.stop() == 0
    assert len(webhook.requests) == requests  # a restart without a change: no action


def test_action_none_reports_mounted_as_applied(tmp_path, volume, sidecars):
    sidecar = _start(sidecars, tmp_path, volume, "--action", "none")
    assert _status(sidecar)["action"] == "none"
    volume.write({TOKEN: "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    _wait(lambda: _key(_status(sidecar))["mounted"] == fp("token-1"), "the rotation")
    status = _status(sidecar)
    assert _key(status)["applied"] == fp("token-1") and status["pending"] is False
    assert status["last_action"]["result"] is None
    assert sidecar.stop() == 0
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["keys"][volume.target_dir][TOKEN] == fp("token-1")


def test_an_unreadable_key_has_a_reason_and_no_fingerprint(tmp_path, sidecars):
    directory = tmp_path / "plain"
    directory.mkdir()
    (directory / "GOOD").write_text("ok")
    (directory / "EMPTY").write_text("")
    sidecar = _start(sidecars, tmp_path, AtomicWriter(directory), "--action", "none")
    keys = {k["name"]: k for k in _status(sidecar)["keys"]}
    assert keys["EMPTY"]["mounted"] is None and keys["EMPTY"]["reason"] == "bad-value"
    assert keys["GOOD"]["mounted"] == fp("ok") and keys["GOOD"]["reason"] is None
    assert str(directory) not in json.dumps(keys)
    assert sidecar.stop() == 0


def test_status_and_metrics_need_the_token_in_either_header(tmp_path, volume, sidecars):
    token_file = os.path.join(volume.target_dir, TOKEN)
    sidecar = _start(sidecars, tmp_path, volume, "--action", "none", env={
        # "true", not "1": read as a boolean (it once left /metrics open)
        "AGENTOS_METRICS_REQUIRE_AUTH": "true", "AGENTOS_SERVICE_TOKEN_FILE": token_file})

    def get(path: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.get(sidecar.url + path, headers=headers, timeout=5)

    for path in ("/status", "/metrics"):
        assert get(path, {}).status_code == 401
        assert get(path, {"Authorization": "Bearer wrong"}).status_code == 401
        assert get(path, {"X-AgentOS-Token": "wrong"}).status_code == 401
        assert get(path, {"Authorization": "Basic token-0"}).status_code == 401
        assert get(path, {"Authorization": "Bearer token-0"}).status_code == 200
        # what reaches the pod through kube-apiserver's proxy: no Authorization
        assert get(path, {"X-AgentOS-Token": "token-0"}).status_code == 200
    refused = get("/status", {})
    assert refused.json() == {"version": 1, "error": "unauthorized"}
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    # the token follows a rotation
    volume.write({TOKEN: "token-1", "AGENTOS_SIGNING_KEY": "key-0"})
    _wait(lambda: get("/status", {"X-AgentOS-Token": "token-1"}).status_code == 200,
          "the rotated token to be accepted")
    assert sidecar.stop() == 0


def test_an_unreadable_auth_switch_fails_closed(tmp_path, volume, sidecars, canary):
    token_file = os.path.join(volume.target_dir, TOKEN)
    sidecar = _start(sidecars, tmp_path, volume, "--action", "none", env={
        "AGENTOS_METRICS_REQUIRE_AUTH": canary.value, "AGENTOS_SERVICE_TOKEN_FILE": token_file})
    assert httpx.get(sidecar.url + "/status", timeout=5).status_code == 401
    assert _status(sidecar, {"X-AgentOS-Token": "token-0"})["version"] == 1
    metrics = httpx.get(sidecar.url + "/metrics", headers={"X-AgentOS-Token": "token-0"},
                        timeout=5).text
    # the reason is metrics_auth, or bad_boolean where the sidecar counts that apart
    assert re.search(
        r'configuration_warnings\{reason="(metrics_auth|bad_boolean)"\} 1\.0', metrics)
    assert sidecar.stop() == 0
    assert "AGENTOS_METRICS_REQUIRE_AUTH" in sidecar.text()
    canary.assert_absent(sidecar.text())


def test_the_canary_is_never_in_status_logs_or_metrics(
    tmp_path, volume, webhook, sidecars, canary
):
    sidecar = _start(sidecars, tmp_path, volume, "--action", "http", "--url", webhook.url,
                     "--log-level", "DEBUG")
    volume.write({TOKEN: canary.value, "AGENTOS_SIGNING_KEY": canary.value + "\n"})
    _wait(lambda: _key(_status(sidecar))["applied"] == fingerprint_bytes(canary.value_bytes),
          "the canary to be applied")
    bodies = [httpx.get(sidecar.url + p, timeout=5).text
              for p in ("/status", "/metrics", "/healthz", "/readyz")]
    assert sidecar.stop() == 0
    canary.assert_absent(sidecar.text(), (tmp_path / "state.json").read_text(), *bodies)


def test_metrics_auth_prefers_the_proxy_header(tmp_path):
    # When both are sent, X-AgentOS-Token decides: a wrong one is not rescued by the other.
    token = tmp_path / "token"
    token.write_text("right")
    auth = MetricsAuth({"AGENTOS_METRICS_REQUIRE_AUTH": "yes",
                        "AGENTOS_SERVICE_TOKEN_FILE": str(token)})
    assert auth.required
    assert auth.allowed(None, "right")
    assert auth.allowed("Bearer right", None)
    assert not auth.allowed("Bearer right", "wrong")
    assert not auth.allowed(None, None) and not auth.allowed("Bearer ", "")
    assert MetricsAuth({"AGENTOS_METRICS_REQUIRE_AUTH": "off"}).allowed(None, None)
    closed = MetricsAuth({"AGENTOS_METRICS_REQUIRE_AUTH": "maybe"})
    assert closed.required and closed.setting_problem
    assert "maybe" not in closed.setting_problem


def test_action_none_needs_no_target_and_is_read_from_the_environment():
    from agentos_secrets.sidecar.actions import build
    from agentos_secrets.sidecar.config import parse

    for argv, env in ((["--watch", "/x", "--action", "none"], {}),
                      (["--watch", "/x"], {"AGENTOS_SIDECAR_ACTION": "none"})):
        action = build(parse(argv, env=env))
        assert action.kind == "none" and action.ready() is None
        assert getattr(action, "passive", False) is True
