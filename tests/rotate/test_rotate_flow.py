"""``rotate`` end to end against the fake API server with simulated pods."""

from __future__ import annotations

import base64
import json

from rotate_helpers import (
    FAST,
    KEY,
    NS,
    OLD,
    SECRET,
    SimPod,
    annotations,
    events,
    rotate,
)

from agentos_secrets.secret import fingerprint_bytes


def _value_file(tmp_path, value: bytes):
    path = tmp_path / "new"
    path.write_bytes(value)
    path.chmod(0o600)
    return path


def test_full_rotation_stages_switches_drops_and_never_leaks(api, kubeconfig, tmp_path, canary):
    pods = [SimPod(api, f"agentos-model-policy-{i}") for i in range(3)]
    new = _value_file(tmp_path, canary.value_bytes)
    code, out, err = rotate(kubeconfig, KEY, "--from-file", str(new), "--output", "json", *FAST)
    assert code == 0, out + err
    assert api.secret_data(NS, SECRET)[KEY] == canary.value_bytes
    assert f"{KEY}_PREVIOUS" not in api.secret_data(NS, SECRET)
    kinds = [e["event"] for e in events(out)]
    for expected in ("start", "write", "gate", "gate-passed", "drain", "done", "exit"):
        assert expected in kinds
    phases = [e["phase"] for e in events(out) if e["event"] == "write"]
    assert phases == ["staged", "switched", "dropped", "done"]
    ann = annotations(api)
    assert ann["rotate.agentos.dev/phase"] == "done"
    assert ann["rotate.agentos.dev/new-fingerprint"] == fingerprint_bytes(canary.value_bytes)
    assert ann["rotate.agentos.dev/old-fingerprint"] == fingerprint_bytes(OLD)
    canary.assert_absent(out, err, json.dumps(ann))
    # Every Secret write carries one transition with a resourceVersion precondition; the
    # value is only ever in the data of those writes (base64), nowhere else.
    encoded = base64.b64encode(canary.value_bytes)
    for request in api.requests:
        if request.method == "PATCH":
            body = json.loads(request.body)
            assert body["metadata"]["resourceVersion"]
            canary.assert_absent(json.dumps(body["metadata"]))
        else:
            canary.assert_absent(request.body, request.path)
            assert encoded not in request.body
        canary.assert_absent(json.dumps({k: v for k, v in request.headers.items()
                                         if k.lower() != "x-agentos-token"}))
    # /status was read with the old token first: the new one is presented only once the
    # old one is gone (drop gate), and only in X-AgentOS-Token through pods/proxy.
    for pod in pods:
        assert pod.reads >= 3
        assert OLD.decode() in pod.tokens_seen


def test_plan_changes_nothing_and_lists_pods_and_gates(api, kubeconfig):
    SimPod(api, "p1")
    SimPod(api, "bare", sidecar=False)
    before = api.secret(NS, SECRET)
    code, _out, err = rotate(kubeconfig, KEY, "--plan", "--output", "plain")
    assert code == 0, err
    assert api.secret(NS, SECRET) == before
    assert api.count("PATCH") == 0
    assert "pod p1" in err and "port 9095" in err
    assert "pod bare" in err and "NO SIDECAR" in err
    assert "1. stage" in err and "timeout 180 s" in err
    assert "nothing was changed" in err


def test_generate_makes_a_urlsafe_256_bit_value(api, kubeconfig):
    SimPod(api, "p1")
    code, out, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 0, err
    value = api.secret_data(NS, SECRET)[KEY]
    assert len(value) == 43 and value != OLD
    assert set(value.decode()) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert value.decode() not in out + err


def test_value_from_stdin(api, kubeconfig, canary):
    SimPod(api, "p1")
    code, out, err = rotate(kubeconfig, KEY, *FAST, stdin=canary.value_bytes + b"\n")
    assert code == 0, err
    assert api.secret_data(NS, SECRET)[KEY] == canary.value_bytes
    canary.assert_absent(out, err)
