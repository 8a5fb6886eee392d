"""The fake kube-apiserver answers like the real one where ``rotate`` depends on it.

Each test speaks raw HTTPS (http.client), so what is checked is the wire behaviour, not
what a client library makes of it.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fake_apiserver import FakeApiServer, TlsFiles, make_client_cert, make_tls, parse_label_selector

TOKEN = "operator-token"
NS = "agentos"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApiServer]:
    with FakeApiServer(tls, token=TOKEN) as server:
        server.put_secret(NS, "agentos-secrets", {"AGENTOS_SERVICE_TOKEN": b"old"})
        yield server


def call(
    api: FakeApiServer, method: str, path: str, body: Any = None, *,
    content_type: str = "application/merge-patch+json", token: str = TOKEN,
    headers: dict[str, str] | None = None, cert: tuple[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    context = ssl.create_default_context(cafile=api.tls.ca)
    if cert:
        context.load_cert_chain(*cert)
    port = int(api.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    sent = {"Content-Type": content_type, **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers=sent)
    answer = connection.getresponse()
    raw = answer.read()
    connection.close()
    try:
        document = json.loads(raw)
    except ValueError:
        document = raw
    return answer.status, dict(answer.getheaders()), document


SECRET = f"/api/v1/namespaces/{NS}/secrets/agentos-secrets"


def test_unauthenticated_is_a_401_status(api):
    status, _, body = call(api, "GET", SECRET, token="wrong")
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"


def test_secret_get_and_merge_patch_bump_the_resource_version(api):
    status, _, secret = call(api, "GET", SECRET)
    assert status == 200 and secret["data"]["AGENTOS_SERVICE_TOKEN"] == "b2xk"
    rv = secret["metadata"]["resourceVersion"]
    patch = {"metadata": {"resourceVersion": rv, "annotations": {"a.example/x": "1"}},
             "data": {"K": base64.b64encode(b"v").decode()}}
    status, _, updated = call(api, "PATCH", SECRET, patch)
    assert status == 200
    assert int(updated["metadata"]["resourceVersion"]) > int(rv)
    assert api.secret_data(NS, "agentos-secrets") == {"AGENTOS_SERVICE_TOKEN": b"old", "K": b"v"}
    # the same precondition again is stale now: 409 Conflict, nothing written
    status, _, body = call(api, "PATCH", SECRET, {**patch, "data": {"K": None}})
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    assert "K" in api.secret_data(NS, "agentos-secrets")


def test_put_with_stale_resource_version_conflicts_and_name_must_match(api):
    secret = api.secret(NS, "agentos-secrets")
    stale = json.loads(json.dumps(secret))
    api.put_secret(NS, "agentos-secrets", {"AGENTOS_SERVICE_TOKEN": b"changed"})
    assert call(api, "PUT", SECRET, stale, content_type="application/json")[0] == 409
    fresh = api.secret(NS, "agentos-secrets")
    fresh["metadata"]["name"] = "other"
    assert call(api, "PUT", SECRET, fresh, content_type="application/json")[0] == 400


def test_json_patch_test_op_and_validation(api):
    rv = api.secret(NS, "agentos-secrets")["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
           {"op": "remove", "path": "/data/AGENTOS_SERVICE_TOKEN"}]
    status, _, body = call(api, "PATCH", SECRET, ops, content_type="application/json-patch+json")
    assert status == 422 and body["reason"] == "Invalid"
    ops[0]["value"] = rv
    assert call(api, "PATCH", SECRET, ops, content_type="application/json-patch+json")[0] == 200
    assert api.secret_data(NS, "agentos-secrets") == {}
    bad_key = {"data": {"not/valid": "dg=="}}
    status, _, body = call(api, "PATCH", SECRET, bad_key)
    assert status == 422 and body["details"]["causes"][0]["field"] == "data[not/valid]"
    assert call(api, "PATCH", SECRET, {"data": {"K": "***"}})[0] == 400
    assert call(api, "PATCH", SECRET, {"data": {}}, content_type="text/plain")[0] == 415
    huge = {"data": {"K": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}}
    assert call(api, "PATCH", SECRET, huge)[0] == 422


def test_missing_secret_is_404_and_unknown_path_404_and_wrong_method_405(api):
    status, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/secrets/nope")
    assert status == 404 and body["details"]["kind"] == "secrets"
    assert call(api, "GET", "/api/v1/nodes")[0] == 404
    assert call(api, "POST", SECRET, {})[0] == 405


def test_rbac_deny_and_strict_grants(api):
    api.deny("patch", "secrets")
    status, _, body = call(api, "PATCH", SECRET, {"metadata": {}})
    assert status == 403 and body["reason"] == "Forbidden"
    assert 'cannot patch resource "secrets"' in body["message"]
    api.set_rbac(True)
    api.grant("get", "secrets", name="agentos-secrets")
    assert call(api, "GET", SECRET)[0] == 200
    status, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/pods")
    assert status == 403 and 'cannot list resource "pods"' in body["message"]


def pod(name: str, labels: dict[str, str], phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "ports": [{"name": "status",
                                                                "containerPort": 9095}]}]},
            "status": {"phase": phase}}


def test_pod_list_selectors_and_paging(api):
    for index in range(5):
        api.add_pod(NS, pod(f"p{index}", {"app": "a" if index < 3 else "b", "tier": "x"}))
    api.add_pod(NS, pod("pending", {"app": "a"}, phase="Pending"))
    path = f"/api/v1/namespaces/{NS}/pods"

    def names(query: str) -> list[str]:
        status, _, body = call(api, "GET", f"{path}?{query}")
        assert status == 200, body
        return [p["metadata"]["name"] for p in body["items"]]

    assert names("labelSelector=app%3Da") == ["p0", "p1", "p2", "pending"]
    assert names("labelSelector=app+in+(b),tier") == ["p3", "p4"]
    assert names("labelSelector=app!%3Da,!tier") == []
    assert names("labelSelector=app%3Da&fieldSelector=status.phase%3DRunning") == ["p0", "p1", "p2"]
    assert call(api, "GET", f"{path}?labelSelector=app+in+b")[0] == 400
    _, _, page = call(api, "GET", f"{path}?limit=4")
    assert len(page["items"]) == 4 and page["metadata"]["remainingItemCount"] == 2
    _, _, rest = call(api, "GET", f"{path}?limit=4&continue={page['metadata']['continue']}")
    assert [p["metadata"]["name"] for p in rest["items"]] == ["p4", "pending"]
    assert "continue" not in rest["metadata"]


def test_label_selector_grammar():
    assert parse_label_selector("a=b, c!=d,e in (f, g),!h,i") == [
        ("a", "=", ("b",)), ("c", "!=", ("d",)), ("e", "in", ("f", "g")), ("h", "!", ()),
        ("i", "exists", ()),
    ]
    for bad in ("a=", "a in b", ",", "a=b,", "a b"):
        with pytest.raises(ValueError):
            parse_label_selector(bad)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_pod_proxy_strips_authorization_and_resolves_named_ports(api):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api.add_pod(NS, pod("p0", {}), proxy={9095: ("127.0.0.1", server.server_address[1])})
        for target in ("p0:9095", "p0%3A9095", "p0:status", "http:p0:9095"):
            status, _, body = call(
                api, "GET", f"/api/v1/namespaces/{NS}/pods/{target}/proxy/status?x=1",
                headers={"X-AgentOS-Token": "t"},
            )
            assert status == 200, (target, body)
            assert body["path"] == "/status?x=1"
            lowered = {k.lower(): v for k, v in body["headers"].items()}
            assert "authorization" not in lowered
            assert lowered["x-agentos-token"] == "t"
        assert call(api, "GET", f"/api/v1/namespaces/{NS}/pods/p0:9999/proxy/status")[0] == 503
        assert call(api, "GET", f"/api/v1/namespaces/{NS}/pods/gone:9095/proxy/status")[0] == 404
        api.deny("get", "pods/proxy")
        status, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/pods/p0:9095/proxy/status")
        assert status == 403 and '"pods/proxy"' in body["message"]
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_handler_and_not_running_pod(api):
    api.add_pod(NS, pod("p1", {}), proxy_handler=lambda path, headers: (401, b'{"e":1}'))
    status, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/pods/p1:9095/proxy/status")
    assert (status, body) == (401, {"e": 1})
    api.add_pod(NS, pod("p2", {}, phase="Pending"), proxy_handler=lambda p, h: (200, b"{}"))
    assert call(api, "GET", f"/api/v1/namespaces/{NS}/pods/p2:9095/proxy/status")[0] == 503


def test_injected_429_carries_retry_after_and_can_target_one_path(api):
    api.fail_next(429, method="PATCH", retry_after=2)
    assert call(api, "GET", SECRET)[0] == 200
    status, headers, body = call(api, "PATCH", SECRET, {"metadata": {}})
    assert status == 429 and headers["Retry-After"] == "2"
    assert body["details"]["retryAfterSeconds"] == 2
    assert call(api, "PATCH", SECRET, {"metadata": {}})[0] == 200


def test_workload_lists(api):
    api.add_workload("StatefulSet", NS, {"metadata": {"name": "db", "labels": {"app": "db"}},
                                         "spec": {"selector": {"matchLabels": {"app": "db"}}}})
    status, _, body = call(api, "GET", f"/apis/apps/v1/namespaces/{NS}/statefulsets")
    assert status == 200 and body["kind"] == "StatefulSetList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["db"]
    status, _, body = call(api, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments")
    assert [i["metadata"]["name"] for i in body["items"]] == ["agentos-model-policy"]


def test_client_certificate_authenticates_as_its_common_name(api, tmp_path):
    cert = make_client_cert(api.tls, str(tmp_path), "alice")
    api.deny("get", "secrets", token="alice")
    status, _, body = call(api, "GET", SECRET, token="", cert=cert)
    assert status == 403 and 'User "alice"' in body["message"]
    assert call(api, "GET", f"/api/v1/namespaces/{NS}/pods", token="", cert=cert)[0] == 200
