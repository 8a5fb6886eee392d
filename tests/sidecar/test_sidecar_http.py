"""The http action against a real loopback server, and the webhook signature."""

from __future__ import annotations

import json
import os

import pytest

from agentos_secrets import Secret
from agentos_secrets.sidecar.actions.base import ActionError
from agentos_secrets.sidecar.actions.http import HttpAction
from agentos_secrets.sidecar.config import StatusRanges
from agentos_secrets.webhook import SIGNATURE_HEADER, sign, verify_signature


def _secret_file(path, value: str) -> str:
    path.write_text(value)
    os.chmod(path, 0o600)
    return str(path)


def test_success_posts_one_request_with_a_kept_open_client(webhook):
    action = HttpAction(webhook.url)
    try:
        action.apply("")
        action.apply("")
    finally:
        action.close()
    assert [r.method for r in webhook.requests] == ["POST", "POST"]
    assert json.loads(webhook.requests[0].body) == {"event": "secrets-rotated"}
    assert webhook.requests[0].headers["User-Agent"].startswith("agentos-secrets-sidecar")


def test_fingerprint_is_sent_when_given(webhook):
    action = HttpAction(webhook.url, method="PUT", send_fingerprint=True)
    assert action.uses_fingerprint
    try:
        action.apply("fp1:0123456789abcdef")
    finally:
        action.close()
    assert webhook.requests[0].method == "PUT"
    assert json.loads(webhook.requests[0].body)["fingerprint"] == "fp1:0123456789abcdef"


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (401, False)]
)
def test_status_mapping(webhook, status, retryable):
    webhook.responder = lambda n: status
    action = HttpAction(webhook.url)
    try:
        with pytest.raises(ActionError) as err:
            action.apply("")
    finally:
        action.close()
    assert err.value.retryable is retryable and err.value.status == status
    assert str(status) in str(err.value)


def test_expected_statuses_are_configurable(webhook):
    webhook.responder = lambda n: 304
    action = HttpAction(webhook.url, expect_status=StatusRanges("200-299,304"))
    try:
        action.apply("")
    finally:
        action.close()


def test_connection_refused_is_retryable():
    action = HttpAction("http://127.0.0.1:9/reload", timeout=1)
    try:
        with pytest.raises(ActionError) as err:
            action.apply("")
    finally:
        action.close()
    assert err.value.retryable


def test_a_hung_endpoint_times_out_and_is_retryable(webhook):
    webhook.responder = lambda n: 0 if n == 0 else 200
    action = HttpAction(webhook.url, timeout=0.3)
    try:
        with pytest.raises(ActionError) as err:
            action.apply("")
        assert err.value.retryable and "timed out" in str(err.value)
        action.apply("")  # the same kept-open client recovers
    finally:
        action.close()
    assert len(webhook.requests) == 2


def test_header_files_are_reread_on_every_attempt_and_never_in_errors(
    webhook, tmp_path, canary
):
    token = tmp_path / "token"
    _secret_file(token, "Bearer first")
    webhook.responder = lambda n: 200 if n == 0 else 403
    action = HttpAction(webhook.url, header_files=(("Authorization", str(token)),))
    try:
        action.apply("")
        _secret_file(token, f"Bearer {canary.value}")
        with pytest.raises(ActionError) as err:
            action.apply("")
    finally:
        action.close()
    assert webhook.requests[0].headers["Authorization"] == "Bearer first"
    assert webhook.requests[1].headers["Authorization"] == f"Bearer {canary.value}"
    assert not err.value.retryable
    canary.assert_absent(str(err.value), repr(action))


def test_a_missing_header_file_is_a_retryable_error_naming_it(webhook, tmp_path):
    action = HttpAction(webhook.url, header_files=(("X-Token", str(tmp_path / "nope")),))
    try:
        with pytest.raises(ActionError) as err:
            action.apply("")
    finally:
        action.close()
    assert err.value.retryable and "X-Token" in str(err.value)
    assert str(tmp_path / "nope") in str(err.value)
    assert webhook.requests == []


def test_url_credentials_are_redacted_in_errors(canary):
    action = HttpAction(f"http://user:{canary.value}@127.0.0.1:9/r?token={canary.value}",
                        timeout=1)
    try:
        with pytest.raises(ActionError) as err:
            action.apply("")
    finally:
        action.close()
    canary.assert_absent(str(err.value), repr(action))


def test_hmac_signature_verifies_with_the_library(webhook, tmp_path, canary):
    key_file = _secret_file(tmp_path / "key", canary.value)
    action = HttpAction(webhook.url, hmac_key_file=key_file)
    try:
        action.apply("")
    finally:
        action.close()
    request = webhook.requests[0]
    header = request.headers[SIGNATURE_HEADER]
    canary.assert_absent(header)
    assert verify_signature(Secret(canary.value), header, request.body)
    assert verify_signature(["old-key", canary.value], header, request.body)
    assert not verify_signature("other-key", header, request.body)
    assert not verify_signature(canary.value, header, request.body + b" ")


def test_verify_signature_refuses_stale_malformed_and_missing():
    body = b"{}"
    header = sign("k", body, timestamp=1_000_000)
    assert verify_signature("k", header, body, now=1_000_100)
    assert not verify_signature("k", header, body, now=1_000_000 + 301)
    assert not verify_signature("k", None, body)
    assert not verify_signature("k", "garbage", body)
    assert not verify_signature("k", "t=abc,v1=00", body)
    assert not verify_signature("k", header.replace("t=1000000", "t=1000001"), body,
                                now=1_000_000)
