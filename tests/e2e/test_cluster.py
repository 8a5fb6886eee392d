"""The local cluster harness (examples/cluster.py) with its real processes.

What the rotation tests rely on: each pod's sidecar answers ``/status`` through the API
server's pod proxy (with the ``Authorization`` header stripped on the way, so the token
travels in ``X-AgentOS-Token``), each kubelet projects the Secret on its own delay, a
replaced pod mounts the Secret as it is, the senders' traffic really breaks when a token
is replaced in one step (so a 0 elsewhere means something), and nothing is left running.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request

import pytest

from agentos_secrets.secret import fingerprint_bytes
from examples.cluster import SERVICE_PORT, SIDECAR_PORT, Cluster
from examples.rotation import phase, runbook_rotation

pytestmark = pytest.mark.e2e

TOKEN = "AGENTOS_SERVICE_TOKEN"


def _proxy_status(cluster: Cluster, pod: str, token: str | None) -> tuple[int, dict]:
    status, body = _proxy(cluster, pod, SIDECAR_PORT, "status", token)
    return status, json.loads(body or b"{}")


def _proxy(
    cluster: Cluster, pod: str, port: int, path: str, token: str | None
) -> tuple[int, bytes]:
    url = f"{cluster.api.url}/api/v1/namespaces/{cluster.namespace}/pods/{pod}:{port}/proxy/{path}"
    headers = {"Authorization": f"Bearer {cluster.api_token}"}
    if token is not None:
        headers["X-AgentOS-Token"] = token
    context = ssl.create_default_context(
        cafile=os.path.join(cluster.workdir, "apiserver", "ca.crt")
    )
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), context=context, timeout=5
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _settled_status(cluster: Cluster, pod: str, token: str) -> tuple[int, dict]:
    """/status once no key is still ``deriving`` (a fresh sidecar derives its per-key
    fingerprints on its first turn, after it is ready: docs/contracts.md)."""
    deadline = time.monotonic() + 10
    while True:
        status, document = _proxy_status(cluster, pod, token)
        deriving = [k for k in document.get("keys", []) if k.get("reason") == "deriving"]
        if status != 200 or not deriving or time.monotonic() > deadline:
            return status, document
        time.sleep(0.05)


def _mounted(document: dict, name: str) -> str | None:
    for key in document.get("keys", []):
        if key["name"] == name:
            return key["mounted"]
    return None


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_pods_report_their_volume_through_the_pod_proxy(canary):
    data = {TOKEN: canary.value_bytes, "AGENTOS_SIGNING_KEY": b"signing-key-value-1"}
    with Cluster(data, replicas=2, kubelet_delay=(0.1, 0.6), seed=3) as cluster:
        names = [pod.name for pod in cluster.pods]
        assert len(set(names)) == 2
        for name in names:
            status, document = _settled_status(cluster, name, canary.value)
            assert status == 200
            assert document["pod"] == name and document["action"] == "none"
            assert _mounted(document, TOKEN) == fingerprint_bytes(canary.value_bytes)
            # Authorization (the API credential) is stripped by the proxy: no token, no status
            assert _proxy_status(cluster, name, None)[0] == 401
        new = data | {TOKEN + "_PREVIOUS": b"the-next-token-value"}
        cluster.api.put_secret(cluster.namespace, cluster.secret, new)
        version = cluster.secret_version()
        for name in names:
            assert _wait(
                lambda n=name: (
                    _mounted(_proxy_status(cluster, n, canary.value)[1], TOKEN + "_PREVIOUS")
                    == fingerprint_bytes(b"the-next-token-value")
                )
            )
        converged = cluster.converged_at(version)
        assert all(at is not None for at in converged.values())
        delays = [p.kubelet.projections[-1].delay for p in cluster.pods]
        assert all(0.1 <= d <= 0.6 for d in delays) and delays[0] != delays[1]
        wire = b"".join(r.body + json.dumps(r.headers).encode() for r in cluster.api.requests)
        workdir = cluster.workdir
    assert cluster.left_behind == []
    assert not os.path.exists(workdir), "the volumes and the kubeconfig are removed"
    assert all(c.process.returncode is not None for c in cluster.children.started)
    assert canary.value_bytes in wire  # the token does travel to the sidecar (as it must) ...
    for pod in names:
        output = "\n".join(c.output() for c in cluster.children.started if pod in c.name)
        canary.assert_absent(output)  # ... but no process prints it


def test_a_replaced_pod_mounts_the_secret_as_it_is_now():
    data = {TOKEN: b"first-token-value"}
    with Cluster(data, replicas=2, kubelet_delay=(0.1, 0.2), seed=4) as cluster:
        stuck = cluster.pods[0]
        stuck.kubelet.syncs = False
        cluster.api.put_secret(cluster.namespace, cluster.secret, {TOKEN: b"second-token-value"})
        time.sleep(0.6)
        status, document = _proxy_status(cluster, stuck.name, "first-token-value")
        assert status == 200 and _mounted(document, TOKEN) == fingerprint_bytes(
            b"first-token-value"
        )
        fresh = cluster.replace_pod(stuck)
        assert fresh.name != stuck.name
        assert [p.name for p in cluster.pods] == [cluster.pods[0].name, fresh.name]
        status, document = _settled_status(cluster, fresh.name, "second-token-value")
        assert status == 200
        assert _mounted(document, TOKEN) == fingerprint_bytes(b"second-token-value")
        assert _proxy_status(cluster, stuck.name, "second-token-value")[0] == 404
        assert stuck.service.process.poll() is not None
        assert stuck.sidecar.process.poll() is not None
    assert cluster.left_behind == []


def test_replacing_the_token_in_one_step_rejects_requests():
    """The negative control of the demo: without stage/switch/drop (and with the
    services' own grace window at 0), pods updated at different times reject each
    other's requests. The orchestrated rotation must bring this to 0."""
    data = {TOKEN: b"one-step-token-old"}
    with Cluster(data, replicas=3, kubelet_delay=(0.2, 1.5), seed=5) as cluster:
        cluster.start_senders(150)
        time.sleep(0.5)
        cluster.api.put_secret(cluster.namespace, cluster.secret, {TOKEN: b"one-step-token-new"})
        version = cluster.secret_version()
        assert _wait(lambda: None not in cluster.converged_at(version).values())
        time.sleep(0.3)
        totals = cluster.stop_senders()
        delays = sorted(p.kubelet.projections[-1].delay for p in cluster.pods)
    assert delays[-1] - delays[0] > 0.2, "the seed gives the pods different delays"
    assert totals["errors"] == 0
    assert totals["rejected"] > 0, totals
    assert totals["accepted"] + totals["rejected"] == totals["requests"]


def test_the_runbook_with_waits_longer_than_every_delay_rejects_nothing():
    """The same traffic through stage / switch / drop by hand, each wait longer than the
    longest kubelet delay: 0 rejected. What rotate must match without the fixed waits."""
    data = {TOKEN: b"runbook-token-old"}
    with Cluster(data, replicas=3, kubelet_delay=(0.2, 1.0), seed=5) as cluster:
        cluster.start_senders(150)
        time.sleep(0.3)
        runbook_rotation(cluster, TOKEN, b"runbook-token-new", wait=1.3, grace=0.0)
        assert phase(cluster.secret_data(), TOKEN, b"runbook-token-old") == "dropped"
        version = cluster.secret_version()
        assert _wait(lambda: None not in cluster.converged_at(version).values())
        time.sleep(0.2)
        totals = cluster.stop_senders()
    assert totals["errors"] == 0
    assert totals["rejected"] == 0, totals
    assert totals["requests"] > 400


def _verify_samples(text: bytes) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name.startswith("agentos_secrets_verify_") and "name" in sample.labels:
                samples[(sample.name, sample.labels.get("result", ""))] = sample.value
    return samples


def test_the_services_verify_counters_through_the_pod_proxy(canary):
    """What rotate's drain reads: 'previous' matches and when the last one was seen."""
    import http.client

    data = {TOKEN: b"counted-token-new", TOKEN + "_PREVIOUS": canary.value_bytes}
    with Cluster(data, replicas=1, kubelet_delay=(0.1, 0.2), seed=6) as cluster:
        pod = cluster.pods[0]
        assert _proxy(cluster, pod.name, SERVICE_PORT, "metrics", None)[0] == 401
        before = time.time()
        for token in (b"counted-token-new", canary.value_bytes, b"wrong-token-value"):
            conn = http.client.HTTPConnection("127.0.0.1", pod.service_port, timeout=5)
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {token.decode()}"})
            conn.getresponse().read()
            conn.close()
        status, text = _proxy(cluster, pod.name, SERVICE_PORT, "metrics", canary.value)
        assert status == 200
        samples = _verify_samples(text)
        # the metrics request itself, made with the previous token, is not counted
        assert samples[("agentos_secrets_verify_total", "current")] == 1
        assert samples[("agentos_secrets_verify_total", "previous")] == 1
        assert samples[("agentos_secrets_verify_total", "none")] == 1
        last = samples[("agentos_secrets_verify_last_previous_timestamp_seconds", "")]
        assert before <= last <= time.time()
        canary.assert_absent(text, pod.service.output())
