"""Real ``agentos-secrets sidecar --action rollout`` processes against the fake API server.

What issue 6 promises of ``rollout``, end to end: one rotation seen by two replicas'
sidecars is one rollout; a restarted sidecar and a sidecar in a pod started after the
rollout patch nothing; a refused token is not retried at the fast pace; a 500 is retried
and then succeeds. The fake (tests/fake_apiserver.py) checks TLS, the bearer token, the
path, the verb, the content type and that the patch touches only the annotation.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_apiserver import FakeApiServer, TlsFiles, make_tls

from agentos_secrets.testing import AtomicWriter
from benchmarks._sidecar import start_sidecar
from examples.procs import Child, Children

pytestmark = pytest.mark.e2e

NAMESPACE = "agentos"
DEPLOYMENT = "agentos-model-policy"
SA_TOKEN = "sa-token-e2e-5b1d"
KEY = "AGENTOS_SERVICE_TOKEN"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApiServer]:
    with FakeApiServer(tls, token=SA_TOKEN) as server:
        yield server


@pytest.fixture
def sa_dir(tmp_path: Path, tls: TlsFiles) -> str:
    writer = AtomicWriter(tmp_path / "serviceaccount")
    writer.write({"token": SA_TOKEN, "namespace": NAMESPACE, "ca.crt": Path(tls.ca).read_bytes()})
    return writer.target_dir


@pytest.fixture
def children() -> Iterator[Children]:
    with Children() as started:
        yield started


def _rollout_sidecar(
    children: Children, name: str, volume: str, api: FakeApiServer, sa_dir: str, state: str
) -> Child:
    return start_sidecar(
        children,
        name,
        [volume],
        None,
        "--action", "rollout",
        "--deployment", DEPLOYMENT,
        "--api-server", api.url,
        "--token-file", os.path.join(sa_dir, "token"),
        "--ca-file", os.path.join(sa_dir, "ca.crt"),
        "--state-file", state,
        "--debounce", "0.1",
        "--timeout", "2",
    )  # fmt: skip


def _applied(state: str) -> str | None:
    try:
        return json.loads(Path(state).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_two_replicas_one_rollout_and_restarts_patch_nothing(
    api, sa_dir, children, tmp_path, canary
):
    volume = str(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: canary.value})
    states = [str(tmp_path / f"state-{i}.json") for i in range(2)]
    replicas = [
        _rollout_sidecar(children, f"replica-{i}", volume, api, sa_dir, states[i])
        for i in range(2)
    ]
    assert _wait(lambda: all(_applied(s) for s in states)), "baselines recorded"
    assert api.requests == [], "a baseline at start-up acts on nothing"

    writer.write({KEY: canary.value + "-rotated"})
    baseline = _applied(states[0])
    assert _wait(lambda: all(_applied(s) not in (None, baseline) for s in states))
    fingerprint = _applied(states[0])
    assert fingerprint == _applied(states[1]), "every replica computes the same value"
    assert api.annotation(NAMESPACE, DEPLOYMENT) == fingerprint
    assert api.rollouts == 1, "two replicas, one rotation: one rollout"

    # The same sidecar restarted (its state survives on the emptyDir), and the sidecar of a
    # pod the rollout started (no state yet): neither sends a single request.
    before = len(api.requests)
    children.stop(replicas[0])
    _rollout_sidecar(children, "restarted", volume, api, sa_dir, states[0])
    _rollout_sidecar(children, "new-pod", volume, api, sa_dir, str(tmp_path / "fresh.json"))
    time.sleep(1.0)
    assert len(api.requests) == before
    assert api.rollouts == 1
    for request in api.requests:
        canary.assert_absent(request.body, request.headers)
    for child in children.started:
        canary.assert_absent(child.output())


def test_refused_token_is_not_retried_at_the_fast_pace(api, sa_dir, children, tmp_path):
    volume = str(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: "value-1"})
    api.accept_token("another-token", only=True)
    state = str(tmp_path / "state.json")
    sidecar = _rollout_sidecar(children, "sidecar", volume, api, sa_dir, state)
    assert _wait(lambda: _applied(state) is not None)
    writer.write({KEY: "value-2"})
    assert _wait(lambda: len(api.requests) >= 1)
    time.sleep(3.0)  # the fast pace would have retried after 1 s and 2 s
    assert [r.status for r in api.requests] == [401]
    assert api.rollouts == 0
    assert SA_TOKEN not in sidecar.output()


def test_server_error_is_retried_then_applied(api, sa_dir, children, tmp_path):
    volume = str(tmp_path / "secrets")
    writer = AtomicWriter(volume)
    writer.write({KEY: "value-1"})
    state = str(tmp_path / "state.json")
    _rollout_sidecar(children, "sidecar", volume, api, sa_dir, state)
    assert _wait(lambda: _applied(state) is not None)
    baseline = _applied(state)
    api.fail_next(500)
    writer.write({KEY: "value-2"})
    assert _wait(lambda: api.rollouts == 1, timeout=15)
    assert _wait(lambda: _applied(state) not in (None, baseline))
    assert [(r.method, r.status) for r in api.requests] == [
        ("GET", 500),
        ("GET", 200),
        ("PATCH", 200),
    ]
    assert api.annotation(NAMESPACE, DEPLOYMENT) == _applied(state)
