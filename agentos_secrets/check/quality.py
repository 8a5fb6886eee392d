"""Judging a secret's value: placeholder, length, entropy, signing-key strength.

Every function returns a short reason (safe to print: it describes, never quotes) or
None. They are shared by the environment rules and the manifest rules so that a
placeholder in an env file and one in a Secret manifest are recognised identically.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter

__all__ = [
    "MIN_SECRET_BITS",
    "MIN_SECRET_CHARS",
    "low_entropy",
    "placeholder",
    "signing_key_problem",
    "too_short",
]

MIN_SECRET_CHARS = 32
MIN_SECRET_BITS = 96
MIN_KEY_MATERIAL_BYTES = 32

# The values of the platform's secrets.env.example and the usual stand-ins.
_EXAMPLE_VALUES = frozenset(
    {
        "fake_service_token_localdev",
        "fake_federation_secret_localdev",
        "fake_signing_key_material_localdev",
        "changeme", "change-me", "change_me", "changeit", "replaceme", "replace-me",
        "replace_me", "placeholder", "secret", "password", "passwd", "example", "test",
        "testing", "dummy", "default", "todo", "tbd", "fixme", "none", "null", "undefined",
    }
)
_PREFIXES = ("fake_", "fake-", "dummy_", "dummy-", "example_", "example-", "changeme",
             "placeholder", "replace_me", "replace-me", "your_", "your-", "insert_", "todo_")
_WHOLE_TEMPLATE = re.compile(r"\A<[^<>]+>\Z|\A%[A-Za-z_]+%\Z")
#: Opening and closing marks of template expressions: ``${...}``, ``$(...)``, ``{{...}}``.
_TEMPLATE_MARKS = (("${", "}"), ("$(", ")"), ("{{", "}}"))


def _has_template(text: str) -> bool:
    """Whether ``text`` holds ``${...}``, ``$(...)`` or ``{{...}}``, in linear time.

    (The regular expression this replaces searched from every opening mark to the end,
    quadratic on a value made of opening marks: 40 KB of ``{{`` took 13 s.) A closing
    mark after the *first* opening one exists exactly when one follows any opening one.
    """
    for opening, closing in _TEMPLATE_MARKS:
        start = text.find(opening)
        if start >= 0 and text.find(closing, start + len(opening)) >= 0:
            return True
    return _WHOLE_TEMPLATE.search(text) is not None


def placeholder(value: str) -> str | None:
    """Why ``value`` looks like a placeholder, or None."""
    text = value.strip()
    lower = text.lower()
    if lower in _EXAMPLE_VALUES:
        return "is a well-known example value"
    if lower.startswith(_PREFIXES):
        return "starts like a placeholder (fake_, example_, changeme, ...)"
    if _has_template(text):
        return "is an unexpanded template (${...}, <...>, {{...}})"
    if len(set(text)) == 1 and len(text) > 1:
        return "is one character repeated"
    return None


def too_short(value: str) -> str | None:
    if len(value) < MIN_SECRET_CHARS:
        return f"is {len(value)} characters long; at least {MIN_SECRET_CHARS} are needed"
    return None


def _smallest_period(text: str) -> int:
    """The length of the shortest block that repeats to form ``text``."""
    n = len(text)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and text[:period] * (n // period) == text:
            return period
    return n


def low_entropy(value: str) -> str | None:
    """Why ``value`` has too little entropy, estimated from its own characters.

    The estimate is the empirical Shannon entropy per character times the length: random
    hex of 32 characters scores about 115 bits, base64 of 32 random bytes about 220,
    a word repeated scores far less. A value made of one short block repeated is low
    whatever its character mix.
    """
    if not value:
        return "is empty"
    period = _smallest_period(value)
    if period <= len(value) // 4:
        return f"is a block of {period} characters repeated"
    counts = Counter(value)
    n = len(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    bits = per_char * n
    if bits < MIN_SECRET_BITS:
        return f"has an estimated {bits:.0f} bits of entropy; at least {MIN_SECRET_BITS} are needed"
    return None


def _material_length(data: bytes) -> int:
    """Bytes of key material: hex and base64 are decoded, anything else counted raw."""
    text = data.strip()
    if re.fullmatch(rb"(?:[0-9a-fA-F]{2})+", text):
        return len(text) // 2
    if re.fullmatch(rb"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}", text) and len(text) % 4 == 0:
        try:
            return len(base64.b64decode(text.replace(b"-", b"+").replace(b"_", b"/"),
                                        validate=True))
        except (binascii.Error, ValueError):
            pass
    return len(text)


def signing_key_problem(data: bytes) -> str | None:
    """Why ``data`` is not a usable signing key, or None.

    Accepted: a PEM private key that ``cryptography`` loads without a password and
    that is RSA >= 2048 bits, EC on P-256/P-384/P-521, Ed25519 or Ed448; otherwise at
    least 32 bytes of key material (hex and base64 are decoded first).
    """
    if b"-----BEGIN" not in data:
        length = _material_length(data)
        if length < MIN_KEY_MATERIAL_BYTES:
            return (f"holds {length} bytes of key material; at least "
                    f"{MIN_KEY_MATERIAL_BYTES} are needed (or a private key)")
        return None
    # Only PEM needs cryptography (about 60 ms to import): raw material is judged without.
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data.strip() + b"\n", password=None)
    except TypeError:
        return "is an encrypted private key; the platform cannot unlock it"
    except Exception:  # noqa: BLE001 - any parse failure means "not a usable key"
        return "is PEM that does not load as an unencrypted private key"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            return f"is an RSA key of {key.key_size} bits; at least 2048 are needed"
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            return f"is an EC key on {key.curve.name}; use P-256, P-384 or P-521"
        return None
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return f"is a {type(key).__name__.removeprefix('_')} key; use RSA, EC or Ed25519"
