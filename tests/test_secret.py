"""The ``Secret`` value: masked everywhere by accident, revealed only on purpose.

Also the fingerprint contract of docs/contracts.md (``fp1:`` + 16 hex digits of
PBKDF2-HMAC-SHA256, 100,000 iterations, fixed versioned salt, optional extra salt), which
nodes compare across hosts: it is checked against an independent computation with
``hashlib`` and across processes.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import pickle
import subprocess
import sys
import traceback

import pytest

from agentos_secrets import Secret, fingerprint_bytes

MASK = "**********"


@pytest.fixture
def secret(canary) -> Secret:
    return Secret(canary.value, name="AGENTOS_SERVICE_TOKEN", source="file")


# -- never by accident -------------------------------------------------------------------
def test_text_conversions_mask(secret: Secret, canary) -> None:
    shown = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!s}",
        f"{secret!r}",
        f"{secret:>60}",
        f"{secret:x}",  # a format spec must not reach the value either
        "%s" % secret,  # noqa: UP031 - %-formatting is the subject of the test
        "%r" % secret,  # noqa: UP031
        "{}".format(secret),  # noqa: UP032
        format(secret, ""),
        str([secret]),
        str({"token": secret}),
        ascii(secret),
    ]
    canary.assert_absent(*shown)
    assert str(secret) == MASK
    assert repr(secret) == f"Secret({MASK} name='AGENTOS_SERVICE_TOKEN' source='file')"


def test_logging_masks(secret: Secret, canary, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_secret")
    with caplog.at_level(logging.DEBUG):
        log.info("token=%s", secret)
        log.info("token=%r", secret)
        log.info("args %s", {"token": secret})
        log.info(secret)
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            log.exception("boom")
    assert len(caplog.records) == 5
    for record in caplog.records:
        assert MASK in record.getMessage() or record.getMessage() == "boom"
    canary.assert_absent(caplog.text)


def test_json_refuses_and_default_str_masks(secret: Secret, canary) -> None:
    with pytest.raises(TypeError) as info:
        json.dumps({"token": secret})
    canary.assert_absent(str(info.value))
    assert json.dumps({"token": secret}, default=str) == json.dumps({"token": MASK})


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_refuses(secret: Secret, canary, protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled") as info:
        pickle.dumps({"nested": [secret]}, protocol=protocol)
    canary.assert_absent("".join(traceback.format_exception(info.value)))


def test_copy_shares_the_immutable_value(secret: Secret) -> None:
    assert copy.copy(secret) is secret
    holder = copy.deepcopy({"token": secret})
    assert holder["token"] is secret


def test_no_dict_no_mutation_no_hash(secret: Secret) -> None:
    assert not hasattr(secret, "__dict__")
    with pytest.raises(AttributeError):
        secret._value = b"other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        secret.name = "OTHER"  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(secret)  # a hash of the value would be an oracle
    with pytest.raises(TypeError):
        {secret}  # noqa: B018


def test_exception_text_masks(secret: Secret, canary) -> None:
    try:
        raise ValueError("bad", secret)
    except ValueError as exc:
        canary.assert_absent(str(exc), repr(exc), "".join(traceback.format_exception(exc)))


# -- on purpose --------------------------------------------------------------------------
def test_reveal(secret: Secret, canary) -> None:
    assert secret.reveal() == canary.value
    assert secret.reveal_bytes() == canary.value_bytes
    assert len(secret) == len(canary.value_bytes)
    assert secret
    assert not Secret(b"")


def test_non_ascii_and_bytes_round_trip() -> None:
    value = "clé-🔑-ключ"
    assert Secret(value).reveal() == value
    assert Secret(value).reveal_bytes() == value.encode()
    assert Secret(bytearray(b"\x00\xff")).reveal_bytes() == b"\x00\xff"


def test_bad_constructor_arguments_do_not_echo(canary) -> None:
    with pytest.raises(TypeError):
        Secret(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as info:
        Secret(canary.value + "\udcff")
    assert info.value.__context__ is None  # the UnicodeEncodeError held the whole text
    canary.assert_absent("".join(traceback.format_exception(info.value)))


# -- equality ----------------------------------------------------------------------------
def test_equality_semantics(secret: Secret, canary) -> None:
    assert secret == Secret(canary.value, name="OTHER", source="env")  # content only
    assert secret == canary.value
    assert secret == canary.value_bytes
    assert canary.value == secret  # reflected through Secret.__eq__
    assert secret != Secret(canary.value + "x")
    assert secret != canary.value[:-1]
    assert secret != b""
    assert secret != canary.value + "\udcff"  # never raises on odd input
    assert not (secret == 42)
    assert secret != None  # noqa: E711


def test_equality_is_constant_time(secret: Secret, canary, monkeypatch) -> None:
    """Every comparison goes through hmac.compare_digest (no early exit on a prefix)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert secret == Secret(canary.value)
    assert secret == canary.value
    assert secret != b"x" * len(canary.value_bytes)
    assert len(calls) == 3
    assert all(a == canary.value_bytes for a, _ in calls)


# -- fingerprint -------------------------------------------------------------------------
def _reference_fingerprint(value: bytes, extra_salt: str = "") -> str:
    salt = b"agentos-secrets/fingerprint/v1" + (b"/" + extra_salt.encode() if extra_salt else b"")
    return "fp1:" + hashlib.pbkdf2_hmac("sha256", value, salt, 100_000, dklen=8).hex()


def test_fingerprint_format_and_contract(secret: Secret, canary, monkeypatch) -> None:
    monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    fp = secret.fingerprint()
    assert fp.startswith("fp1:") and len(fp) == 4 + 16
    int(fp[4:], 16)
    assert fp == _reference_fingerprint(canary.value_bytes)
    assert fp == fingerprint_bytes(canary.value_bytes)
    canary.assert_absent(fp)


def test_fingerprint_is_stable_and_distinguishes(secret: Secret, canary, monkeypatch) -> None:
    monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    assert secret.fingerprint() == secret.fingerprint()
    assert Secret(canary.value).fingerprint() == secret.fingerprint()
    others = {Secret(canary.value + str(i)).fingerprint() for i in range(5)}
    assert len(others) == 5 and secret.fingerprint() not in others


def test_fingerprint_honours_the_extra_salt(secret: Secret, canary, monkeypatch) -> None:
    monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    plain = secret.fingerprint()
    monkeypatch.setenv("AGENTOS_SECRETS_FINGERPRINT_SALT", "cluster-a")
    salted = secret.fingerprint()  # the in-process memo must not serve the unsalted one
    assert salted != plain
    assert salted == _reference_fingerprint(canary.value_bytes, "cluster-a")
    monkeypatch.setenv("AGENTOS_SECRETS_FINGERPRINT_SALT", "cluster-b")
    assert secret.fingerprint() not in (plain, salted)


def _fingerprint_in_child(value: str, extra_salt: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AGENTOS_SECRETS_FINGERPRINT_SALT"}
    if extra_salt is not None:
        env["AGENTOS_SECRETS_FINGERPRINT_SALT"] = extra_salt
    code = (
        "import sys; from agentos_secrets import Secret; "
        "print(Secret(sys.stdin.read()).fingerprint())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=value, capture_output=True, text=True, env=env,
        timeout=60, check=True,
    )
    return proc.stdout.strip()


def test_fingerprint_is_the_same_in_another_process(secret: Secret, canary, monkeypatch) -> None:
    monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    assert _fingerprint_in_child(canary.value, None) == secret.fingerprint()
    monkeypatch.setenv("AGENTOS_SECRETS_FINGERPRINT_SALT", "cluster-a")
    assert _fingerprint_in_child(canary.value, "cluster-a") == secret.fingerprint()
    assert _fingerprint_in_child(canary.value, "cluster-b") != secret.fingerprint()
