"""/healthz, /readyz and /metrics over real HTTP; metrics auth through the Loader."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from agentos_secrets import Loader
from agentos_secrets.sidecar.coalesce import Coalescer, StormBreaker
from agentos_secrets.sidecar.detect import Detector
from agentos_secrets.sidecar.loop import Engine
from agentos_secrets.sidecar.metrics import Metrics
from agentos_secrets.sidecar.retry import Backoff
from agentos_secrets.sidecar.server import MetricsAuth, Server
from agentos_secrets.testing import AtomicWriter
from agentos_secrets.watch import DirectoryWatcher


class ReadyAction:
    kind = "http"
    uses_fingerprint = False
    reason: str | None = None

    def ready(self) -> str | None:
        return self.reason

    def apply(self, fingerprint: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """A started engine with a real watcher, served on loopback; yields (url, engine)."""
    servers: list[tuple[Server, DirectoryWatcher]] = []

    def make(env: dict[str, str] | None = None, loader: Loader | None = None,
             host: str = "127.0.0.1"):
        writer = AtomicWriter(tmp_path / "vol")
        writer.write({"AGENTOS_SERVICE_TOKEN": "v0"})
        metrics = Metrics("http")
        detector = Detector([writer.target_dir])
        engine_box: list[Engine] = []
        watcher = DirectoryWatcher(detector.directories, lambda h: engine_box[0].hint(h))
        engine = Engine(
            detector=detector, action=ReadyAction(), metrics=metrics,
            coalescer=Coalescer(0, 0), breaker=StormBreaker(0, 100), backoff=Backoff(),
            resync=60, watcher=watcher,
        )
        engine_box.append(engine)
        server = Server((host, 0), engine, metrics,
                        MetricsAuth(env or {}, loader), time.monotonic)
        server.start()
        servers.append((server, watcher))
        bound, port = server.address
        return f"http://{bound}:{port}", engine, writer

    yield make
    for server, watcher in servers:
        server.stop()
        watcher.stop()


def test_an_ipv6_listen_address_serves_ipv6_and_ipv4(served):
    # --listen [::]:9095 for IPv6-only or dual-stack pods: one socket takes both families.
    url, _engine, _ = served(host="::")
    port = url.rsplit(":", 1)[1]
    answers = [
        httpx.get(f"{base}:{port}/startupz", timeout=5).json()
        for base in ("http://[::1]", "http://127.0.0.1")
    ]
    assert answers[0] == answers[1]


def test_probes_before_and_after_start(served):
    url, engine, _ = served()
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503 and "baseline not recorded yet" in ready.json()["reasons"]
    engine.start(time.monotonic())
    engine.step(time.monotonic())
    assert httpx.get(url + "/readyz").status_code == 200
    health = httpx.get(url + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(url + "/nope").status_code == 404


def test_readyz_says_why_the_target_is_missing_startupz_does_not_wait_for_it(served):
    url, engine, _ = served()
    engine.action.reason = "no process with name 'agentos'"
    assert httpx.get(url + "/startupz").status_code == 503
    engine.start(time.monotonic())
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["no process with name 'agentos'"]
    # a native sidecar's startupProbe must not wait for the app it starts before
    assert httpx.get(url + "/startupz").status_code == 200


def test_readyz_names_a_watched_path_that_does_not_exist(served, tmp_path):
    url, engine, _ = served()
    typo = str(tmp_path / "vol-typo")
    engine.detector = type(engine.detector)([*engine.detector.paths, typo])
    engine.start(time.monotonic())
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == [f"--watch {typo} does not exist (a typo, or not mounted)"]
    os.mkdir(typo)
    assert httpx.get(url + "/readyz").status_code == 200


def test_healthz_fails_when_the_watch_dies(served):
    url, engine, _ = served()
    engine.start(time.monotonic())
    engine.watcher.stop()
    health = httpx.get(url + "/healthz")
    assert health.status_code == 503 and "watch down" in health.json()["reasons"][0]


def test_a_silent_connection_is_closed_and_releases_its_thread(served, monkeypatch):
    import socket
    import threading

    from agentos_secrets.sidecar import server as server_module

    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT", 0.2)
    url, _, _ = served()
    host, port = url.removeprefix("http://").split(":")
    before = threading.active_count()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        answer = b""
        while chunk := sock.recv(4096):  # the server gives up on it (recv would block)
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_metrics_without_auth(served):
    url, engine, _ = served()
    engine.start(time.monotonic())
    text = httpx.get(url + "/metrics").text
    for name in (
        "agentos_secrets_sidecar_actions_total",
        "agentos_secrets_sidecar_last_success_timestamp_seconds",
        "agentos_secrets_sidecar_pending_change",
        "agentos_secrets_sidecar_watch_events_total",
        "agentos_secrets_sidecar_rechecks_total",
        "agentos_secrets_sidecar_detection_to_action_seconds_bucket",
        "agentos_secrets_sidecar_action_duration_seconds",
        'agentos_secrets_sidecar_configuration_warnings{reason="layout_cannot_rotate"}',
        "agentos_secrets_sidecar_storm_breaker_holding",
        "agentos_secrets_sidecar_watches_up 1.0",
    ):
        assert name in text


def test_the_ready_gauge_is_current_without_a_readiness_probe(served):
    # The manifests give the sidecar no readinessProbe: /metrics alone must tell the truth.
    url, engine, _ = served()
    engine.start(time.monotonic())
    assert "agentos_secrets_sidecar_ready 1.0" in httpx.get(url + "/metrics").text
    engine.action.reason = "no process with name 'agentos'"
    engine._ready_cache = None  # the 1 s cache of the action's check
    assert "agentos_secrets_sidecar_ready 0.0" in httpx.get(url + "/metrics").text


def test_metrics_auth_follows_the_rotating_token(served, tmp_path, canary):
    token = tmp_path / "token"
    token.write_text(canary.value)
    os.chmod(token, 0o600)
    env = {"AGENTOS_METRICS_REQUIRE_AUTH": "1", "AGENTOS_SERVICE_TOKEN_FILE": str(token)}
    url, engine, _ = served(env=env, loader=Loader(env=env))
    engine.start(time.monotonic())
    denied = httpx.get(url + "/metrics")
    assert denied.status_code == 401 and "Bearer" in denied.headers["WWW-Authenticate"]
    assert httpx.get(url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code \
        == 401
    allowed = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {canary.value}"})
    assert allowed.status_code == 200
    canary.assert_absent(allowed.text, denied.text)
    canary.assert_absent(httpx.get(url + "/healthz").text, httpx.get(url + "/readyz").text)
    # the token rotates: the new one works at once (the old one only within the grace)
    time.sleep(0.01)
    replacement = tmp_path / "token.new"
    replacement.write_text("new-token-value")
    os.chmod(replacement, 0o600)
    os.replace(replacement, token)
    assert httpx.get(url + "/metrics",
                     headers={"Authorization": "Bearer new-token-value"}).status_code == 200


def test_metrics_auth_without_a_token_denies_and_warns(served):
    env = {"AGENTOS_METRICS_REQUIRE_AUTH": "1"}
    url, engine, _ = served(env=env, loader=Loader(env=env))
    engine.start(time.monotonic())
    assert httpx.get(url + "/metrics", headers={"Authorization": "Bearer x"}).status_code == 401
    assert engine.metrics.value("configuration_warnings", {"reason": "metrics_auth"}) == 1
