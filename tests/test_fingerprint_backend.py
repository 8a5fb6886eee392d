"""The fingerprint is computed with hashlib's PBKDF2 (no ``cryptography`` import in the
sidecar's memory budget); it must stay byte-for-byte the documented derivation."""

from __future__ import annotations

import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from agentos_secrets import secret
from agentos_secrets.secret import fingerprint_bytes


def _reference(data: bytes, extra_salt: str = "") -> str:
    salt = b"agentos-secrets/fingerprint/v1" + (b"/" + extra_salt.encode() if extra_salt else b"")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=8, salt=salt, iterations=100_000)
    return "fp1:" + kdf.derive(data).hex()


def test_same_bytes_as_the_cryptography_derivation(monkeypatch):
    monkeypatch.delenv("AGENTOS_SECRETS_FINGERPRINT_SALT", raising=False)
    for data in (b"", b"x", os.urandom(64), "ünïcode".encode()):
        secret._fingerprint_cache.clear()
        assert fingerprint_bytes(data) == _reference(data)
    monkeypatch.setenv("AGENTOS_SECRETS_FINGERPRINT_SALT", "cluster-a")
    secret._fingerprint_cache.clear()
    assert fingerprint_bytes(b"x") == _reference(b"x", "cluster-a")


def test_the_sidecar_does_not_load_cryptography():
    import subprocess

    code = (
        "import sys\n"
        "from agentos_secrets.sidecar import loop, server, main\n"
        "from agentos_secrets.sidecar.actions import http\n"
        "from agentos_secrets.secret import fingerprint_bytes\n"
        "fingerprint_bytes(b'x')\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
