"""Kubeconfig credentials, federation across two API servers, Secrets owned by others."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import threading
from pathlib import Path

from fake_apiserver import FakeApiServer, make_client_cert
from rotate_helpers import (
    FAST,
    KEY,
    NS,
    OLD,
    OPERATOR_TOKEN,
    OTHER,
    SECRET,
    SimPod,
    annotations,
    events,
    rotate,
    write_kubeconfig,
)

from agentos_secrets.cli import main

FED = "AGENTOS_FED_SHARED_SECRET"


def test_exec_credential_plugin_is_used(api, tmp_path):
    plugin = tmp_path / "credential.py"
    plugin.write_text(
        "import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential', 'status': {'token': 'token-from-exec-plugin'}}))\n"
    )
    api.accept_token("token-from-exec-plugin", only=True, user="laptop-user")
    config = write_kubeconfig(tmp_path / "kubeconfig", {"main": api}, user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}})
    SimPod(api, "p0")
    code, _, err = rotate(config, KEY, "--generate", *FAST)
    assert code == 0, err
    sent = {v for r in api.requests for k, v in r.headers.items() if k.lower() == "authorization"}
    assert sent == {"Bearer token-from-exec-plugin"}
    assert {r.user for r in api.requests} == {"token-from-exec-plugin"}


def test_client_certificate_user(api, tmp_path):
    cert, key = make_client_cert(api.tls, str(tmp_path), "cert-operator")
    api.accept_token("unused", only=True)
    config = write_kubeconfig(tmp_path / "kubeconfig", {"main": api}, user={
        "client-certificate-data": base64.b64encode(Path(cert).read_bytes()).decode(),
        "client-key-data": base64.b64encode(Path(key).read_bytes()).decode()})
    code, _, err = rotate(config, KEY, "--plan")
    assert code == 0, err
    assert {r.user for r in api.requests} == {"cert-operator"}


def test_untrusted_server_is_refused_before_any_request(api, tmp_path):
    from fake_apiserver import make_tls

    other = make_tls(str(tmp_path))
    config = write_kubeconfig(tmp_path / "kubeconfig", {"main": api})
    document = json.loads(json.dumps(__import__("yaml").safe_load(config.read_text())))
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        Path(other.ca).read_bytes()).decode()
    config.write_text(json.dumps(document))
    code, _, err = rotate(config, KEY, "--plan", "--qps", "1000")
    assert code == 1 and "cannot reach the API server" in err
    assert api.requests == []


def test_federation_runs_each_phase_on_b_then_a_and_compares(api, tls, tmp_path, canary):
    with FakeApiServer(tls, token=OPERATOR_TOKEN) as node_b:
        node_b.put_secret(NS, SECRET, {KEY: b"node-b-service-token", FED: OTHER})
        for server in (api, node_b):
            SimPod(server, "federation-0", app="agentos-federation")
        config = write_kubeconfig(tmp_path / "kubeconfig", {"node-a": api, "node-b": node_b})
        value = tmp_path / "new"
        value.write_bytes(canary.value_bytes)
        value.chmod(0o600)
        code, out, err = rotate(config, FED, "--context", "node-a", "--context", "node-b",
                                "--from-file", str(value), "--output", "json", *FAST)
        assert code == 0, out + err
        canary.assert_absent(out, err)
        writes = [(e["context"], e["phase"]) for e in events(out) if e["event"] == "write"]
        assert writes == [("node-b", "staged"), ("node-a", "staged"),
                          ("node-b", "switched"), ("node-a", "switched"),
                          ("node-b", "dropped"), ("node-a", "dropped"),
                          ("node-b", "done"), ("node-a", "done")]
        # both nodes' pods converged before the next phase was written on either
        a_polls = [r.at for r in api.requests if "/proxy/" in r.path]
        b_switch = next(r.at for r in node_b.requests
                        if r.method == "PATCH" and b'"switched"' in r.body)
        a_stage = next(r.at for r in api.requests if r.method == "PATCH" and b'"staged"' in r.body)
        assert any(a_stage < t < b_switch for t in a_polls)
        assert api.secret_data(NS, SECRET)[FED] == node_b.secret_data(NS, SECRET)[FED] \
            == canary.value_bytes
        assert any(e["event"] == "compare" for e in events(out))


def test_secret_owned_by_external_secrets_is_refused_naming_the_owner(api, kubeconfig):
    api.put_secret(NS, SECRET, {KEY: OLD}, owner_references=[{
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "name": "agentos-secrets", "uid": "x", "controller": True}])
    code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 2
    assert "written by the External Secrets Operator (ExternalSecret agentos-secrets)" in err
    assert "--store-cmd" in err
    assert api.count("PATCH") == 0


def test_secret_managed_by_argo_cd_is_refused(api, kubeconfig):
    api.put_secret(NS, SECRET, {KEY: OLD}, managed_fields=[
        {"manager": "argocd-controller", "operation": "Update", "apiVersion": "v1"}])
    code, _, err = rotate(kubeconfig, KEY, "--generate", *FAST)
    assert code == 2 and "Argo CD (managedFields: argocd-controller)" in err


def test_store_cmd_drives_the_phases_through_the_owner(api, kubeconfig, tmp_path, canary):
    owner_ref = [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                  "name": "agentos-secrets", "uid": "x", "controller": True}]
    api.put_secret(NS, SECRET, {KEY: OLD}, owner_references=owner_ref)
    store = tmp_path / "store.json"
    store.write_text(json.dumps({KEY: OLD.decode()}))
    script = tmp_path / "store.py"
    script.write_text(
        "import json, sys\n"
        f"path = {str(store)!r}\n"
        "change = json.load(sys.stdin)\n"
        "data = json.load(open(path))\n"
        "data.update(change['set'])\n"
        "for key in change['remove']: data.pop(key, None)\n"
        "with open(path + '.tmp', 'w') as handle: json.dump(data, handle)\n"
        "import os; os.replace(path + '.tmp', path)\n"
    )
    stop = threading.Event()

    def operator():  # the External Secrets Operator: store -> Secret data, every 50 ms
        while not stop.wait(0.05):
            wanted = {k: v.encode() for k, v in json.loads(store.read_text()).items()}
            if api.secret_data(NS, SECRET) != wanted:
                api.set_secret_data(NS, SECRET, wanted)

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        SimPod(api, "p0")
        value = tmp_path / "new"
        value.write_bytes(canary.value_bytes)
        value.chmod(0o600)
        code, out, err = rotate(kubeconfig, KEY, "--from-file", str(value), "--store-cmd",
                                f"{sys.executable} {script}", "--refresh-interval", "0.3",
                                "--output", "json", *FAST)
    finally:
        stop.set()
        thread.join()
    assert code == 0, out + err
    assert json.loads(store.read_text()) == {KEY: canary.value}
    assert api.secret_data(NS, SECRET) == {KEY: canary.value_bytes}
    stored = [e["phase"] for e in events(out) if e["event"] == "store-cmd"]
    assert stored == ["staged", "switched", "dropped"]
    assert any(e["event"] == "final-check" for e in events(out))
    # rotate itself never wrote data: its patches touch annotations only
    for request in api.requests:
        if request.method == "PATCH":
            assert "data" not in json.loads(request.body)
    canary.assert_absent(out, err)


def test_in_cluster_service_account_without_kubeconfig(api, tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    from agentos_secrets.rotate import kube

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(OPERATOR_TOKEN)
    (sa / "ca.crt").write_bytes(Path(api.tls.ca).read_bytes())
    (sa / "namespace").write_text(NS)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(sa / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(sa / "ca.crt"))
    monkeypatch.setattr(kube, "_SA_NAMESPACE", str(sa / "namespace"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", api.url.rsplit(":", 1)[1])
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    SimPod(api, "p0")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # no --kubeconfig, unlike the rotate() helper
        code = main(["rotate", KEY, "--generate", *FAST])
    assert code == 0, err.getvalue()
    assert "in-cluster: Secret agentos/agentos-secrets: phase done written" in err.getvalue()


def test_rotating_another_key_keeps_the_canary_out_of_every_request(api, kubeconfig, tmp_path,
                                                                     canary):
    SimPod(api, "p0")
    value = tmp_path / "new"
    value.write_bytes(canary.value_bytes)
    value.chmod(0o600)
    code, out, err = rotate(kubeconfig, FED, "--from-file", str(value), *FAST)
    assert code == 0, err
    encoded = base64.b64encode(canary.value_bytes)
    for request in api.requests:
        headers = json.dumps(request.headers)
        canary.assert_absent(request.path, headers)
        if request.method == "PATCH":
            body = json.loads(request.body)
            canary.assert_absent(json.dumps(body["metadata"]))
        else:
            assert encoded not in request.body
        canary.assert_absent(request.body)
    canary.assert_absent(out, err, json.dumps(annotations(api)))


def test_store_mode_final_check_catches_an_owner_that_reverts(api, kubeconfig, tmp_path):
    owner_ref = [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                  "name": "agentos-secrets", "uid": "x", "controller": True}]
    api.put_secret(NS, SECRET, {KEY: OLD}, owner_references=owner_ref)
    # The store-cmd records each change; the owner (a thread) syncs it into the Secret's
    # data, and once the rotation is done a refresh puts the old value back.
    sync = tmp_path / "sync.py"
    sync.write_text(
        "import json, sys\n"
        "change = json.load(sys.stdin)\n"
        f"open({str(tmp_path / 'changes.jsonl')!r}, 'a').write(json.dumps(change) + '\\n')\n"
    )
    changes = tmp_path / "changes.jsonl"
    stop = threading.Event()

    def operator():
        seen = 0
        data = {KEY: OLD}
        while not stop.wait(0.02):
            lines = changes.read_text().splitlines() if changes.exists() else []
            for line in lines[seen:]:
                change = json.loads(line)
                data.update({k: v.encode() for k, v in change["set"].items()})
                for key in change["remove"]:
                    data.pop(key, None)
                api.set_secret_data(NS, SECRET, data)
            seen = len(lines)
            if annotations(api).get("rotate.agentos.dev/phase") == "done":
                api.set_secret_data(NS, SECRET, {KEY: OLD})  # the refresh reverts it
                return

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        SimPod(api, "p0")
        code, out, err = rotate(kubeconfig, KEY, "--generate", "--store-cmd",
                                f"{sys.executable} {sync}", "--refresh-interval", "0.3",
                                "--output", "json", *FAST, "--gate-timeout", "1")
    finally:
        stop.set()
        thread.join()
    assert code == 1, out + err
    failed = next(e for e in events(out) if e["event"] == "gate-failed")
    assert failed["phase"] == "final-check"
    assert "still mounts another value under AGENTOS_SERVICE_TOKEN" in failed["lagging"][0][
        "reason"]
