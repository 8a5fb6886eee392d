"""The ``rollout`` action against a local HTTPS API server that checks every request.

See tests/fake_apiserver.py for what the fake verifies; these tests drive the real
action (real TLS, real HTTP on loopback) and count what reached the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_apiserver import FakeApiServer, TlsFiles, make_tls

from agentos_secrets.secret import fingerprint_bytes
from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.actions.rollout import (
    PATCH_CONTENT_TYPE,
    RolloutAction,
    RolloutConfigError,
)
from agentos_secrets.testing import AtomicWriter

NAMESPACE = "agentos"
DEPLOYMENT = "agentos-model-policy"
SA_TOKEN = "sa-token-1f0c"  # a credential too: it must not be logged either


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def sa_dir(tmp_path: Path, tls: TlsFiles) -> Iterator[AtomicWriter]:
    """A projected service-account volume, written like the kubelet writes it."""
    writer = AtomicWriter(tmp_path / "serviceaccount")
    writer.write({"token": SA_TOKEN, "namespace": NAMESPACE, "ca.crt": Path(tls.ca).read_bytes()})
    yield writer


@pytest.fixture
def api(tls: TlsFiles) -> Iterator[FakeApiServer]:
    with FakeApiServer(tls, token=SA_TOKEN) as server:
        yield server


def make_action(api: FakeApiServer, sa_dir: AtomicWriter, **overrides: object) -> RolloutAction:
    options: dict[str, object] = {
        "deployment": DEPLOYMENT,
        "namespace": NAMESPACE,
        "api_server": api.url,
        "token_file": f"{sa_dir.target_dir}/token",
        "ca_file": f"{sa_dir.target_dir}/ca.crt",
        "timeout": 2.0,
    }
    options.update(overrides)
    return RolloutAction(**options)  # type: ignore[arg-type]


def test_one_rotation_is_one_patch_of_only_the_annotation(api, sa_dir, canary):
    fingerprint = fingerprint_bytes(canary.value_bytes)
    action = make_action(api, sa_dir)
    try:
        assert action.ready() is None
        action.apply(fingerprint)
    finally:
        action.close()
    assert api.rollouts == 1
    assert api.annotation(NAMESPACE, DEPLOYMENT) == fingerprint
    assert [(r.method, r.status) for r in api.requests] == [("GET", 200), ("PATCH", 200)]
    patch = api.requests[1]
    assert patch.path == f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}"
    assert patch.headers["Content-Type"] == PATCH_CONTENT_TYPE
    assert patch.headers["Authorization"] == f"Bearer {SA_TOKEN}"
    template = api.deployment(NAMESPACE, DEPLOYMENT)["spec"]["template"]
    assert template["metadata"]["annotations"]["team"] == "agentos", "other annotations kept"
    for request in api.requests:
        canary.assert_absent(request.body, request.headers)


def test_second_replica_and_restarted_sidecar_do_not_patch_again(api, sa_dir, canary):
    fingerprint = fingerprint_bytes(canary.value_bytes)
    first, second, restarted = (make_action(api, sa_dir) for _ in range(3))
    try:
        first.apply(fingerprint)
        second.apply(fingerprint)  # another replica saw the same rotation
        first.close()
        restarted.apply(fingerprint)  # the same sidecar after a restart
    finally:
        for action in (first, second, restarted):
            action.close()
    assert api.rollouts == 1
    assert api.count("PATCH") == 1
    assert api.count("GET") == 3


def test_a_new_fingerprint_rolls_out_again(api, sa_dir):
    action = make_action(api, sa_dir)
    try:
        action.apply("fp1:0000000000000001")
        action.apply("fp1:0000000000000002")
    finally:
        action.close()
    assert api.rollouts == 2
    assert api.annotation(NAMESPACE, DEPLOYMENT) == "fp1:0000000000000002"


def test_wrong_token_is_a_configuration_error_without_retry(api, sa_dir, caplog):
    api.accept_token("a-different-token", only=True)
    action = make_action(api, sa_dir)
    with pytest.raises(ActionError) as caught, caplog.at_level(logging.DEBUG):
        action.apply("fp1:00000000000000aa")
    action.close()
    assert caught.value.retryable is False
    assert caught.value.status == 401
    assert "--token-file" in str(caught.value)
    assert len(api.requests) == 1, "the action itself never retries; the loop paces retries"
    assert SA_TOKEN not in str(caught.value) + caplog.text


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_error_is_retryable_and_the_retry_succeeds(api, sa_dir, status):
    api.fail_next(status)
    action = make_action(api, sa_dir)
    try:
        with pytest.raises(ActionError) as caught:
            action.apply("fp1:00000000000000bb")
        assert caught.value.retryable is True
        assert caught.value.status == status
        assert api.rollouts == 0
        action.apply("fp1:00000000000000bb")
    finally:
        action.close()
    assert api.rollouts == 1


@pytest.mark.parametrize(
    ("overrides", "allowed", "status", "hint"),
    [
        ({"deployment": "agentos-missing"}, ("get", "patch"), 404, "--deployment"),
        ({}, ("get",), 403, "RBAC"),
        ({"annotation": "other.example/fingerprint"}, ("get", "patch"), 422, "--annotation"),
    ],
)
def test_configuration_errors_are_not_retryable(tls, sa_dir, overrides, allowed, status, hint):
    with FakeApiServer(tls, token=SA_TOKEN, allowed_verbs=allowed) as api:
        action = make_action(api, sa_dir, **overrides)
        with pytest.raises(ActionError) as caught:
            action.apply("fp1:00000000000000cc")
        action.close()
    assert (caught.value.status, caught.value.retryable) == (status, False)
    assert hint in str(caught.value)


def test_token_is_reread_on_every_attempt(api, sa_dir):
    action = make_action(api, sa_dir)
    try:
        action.apply("fp1:0000000000000001")
        sa_dir.write({"token": "sa-token-rotated", "namespace": NAMESPACE,
                      "ca.crt": Path(api.tls.ca).read_bytes()})
        api.accept_token("sa-token-rotated", only=True)
        action.apply("fp1:0000000000000002")
    finally:
        action.close()
    assert api.requests[-1].headers["Authorization"] == "Bearer sa-token-rotated"
    assert api.rollouts == 2


def test_namespace_defaults_to_the_service_account_file(api, sa_dir):
    action = make_action(api, sa_dir, namespace=None)
    try:
        assert action.ready() is None
        action.apply("fp1:0000000000000003")
    finally:
        action.close()
    assert api.annotation(NAMESPACE, DEPLOYMENT) == "fp1:0000000000000003"


def test_unreachable_api_server_is_retryable(tls, sa_dir):
    with FakeApiServer(tls, token=SA_TOKEN) as api:
        url = api.url
    action = make_action(api, sa_dir, api_server=url)
    with pytest.raises(ActionError) as caught:
        action.apply("fp1:00000000000000dd")
    action.close()
    assert caught.value.retryable is True


def test_untrusted_certificate_is_a_configuration_error(api, sa_dir, tmp_path):
    other = make_tls(str(tmp_path))  # a CA that did not sign the server's certificate
    action = make_action(api, sa_dir, ca_file=other.ca)
    with pytest.raises(ActionError) as caught:
        action.apply("fp1:00000000000000ee")
    action.close()
    assert caught.value.retryable is False
    assert "--ca-file" in str(caught.value)
    assert api.requests == []


def test_a_webhook_stripping_the_annotation_is_reported(api, sa_dir):
    api.strip_annotation()
    action = make_action(api, sa_dir)
    with pytest.raises(ActionError) as caught:
        action.apply("fp1:00000000000000ff")
    action.close()
    assert caught.value.retryable is False
    assert "webhook" in str(caught.value)


def test_ready_says_why_not(api, sa_dir, tmp_path):
    assert "--deployment" in (make_action(api, sa_dir, deployment=None).ready() or "")
    missing_token = make_action(api, sa_dir, token_file=str(tmp_path / "absent" / "token"))
    assert "token" in (missing_token.ready() or "")
    bad_ca = make_action(api, sa_dir, ca_file=str(tmp_path / "absent.crt"))
    assert "--ca-file" in (bad_ca.ready() or "")


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"deployment": "Bad_Name"}, "--deployment"),
        ({"namespace": "a/b"}, "--namespace"),
        ({"annotation": "has space"}, "--annotation"),
        ({"api_server": "http://127.0.0.1:1"}, "--api-server"),
        ({"api_server": "https://user:pw@127.0.0.1:1"}, "--api-server"),
    ],
)
def test_malformed_flags_are_refused_by_name(api, sa_dir, overrides, flag):
    with pytest.raises(RolloutConfigError, match=flag) as caught:
        make_action(api, sa_dir, **overrides)
    assert "pw" not in str(caught.value)


def test_ready_and_apply_on_two_threads_build_one_client(api, sa_dir, monkeypatch):
    # /readyz and /metrics call ready() on the server's threads while apply() runs on the
    # loop's; both build the kept-open client on first use. A second client would leak.
    import threading
    import time

    import httpx

    built: list[httpx.Client] = []
    real_client = httpx.Client

    def slow_client(*args, **kwargs):
        time.sleep(0.2)  # widen the window between "no client yet" and "client set"
        client = real_client(*args, **kwargs)
        built.append(client)
        return client

    monkeypatch.setattr(httpx, "Client", slow_client)
    action = make_action(api, sa_dir)
    try:
        probe = threading.Thread(target=action.ready)
        probe.start()
        action.apply(fingerprint_bytes(b"two threads"))
        probe.join(5)
    finally:
        action.close()
    assert len(built) == 1
