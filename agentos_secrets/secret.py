"""The ``Secret`` value: it never shows its content by accident.

``str``, ``repr``, f-strings, ``%``-formatting and logging all print a mask; ``json.dumps``
and ``pickle`` refuse. ``reveal()`` / ``reveal_bytes()`` give the content on purpose.
Equality is constant-time (``hmac.compare_digest``).

Fingerprints
------------
``fingerprint()`` is a short identifier that is safe to print, store in a state file, put
in a Kubernetes annotation or compare across hosts. It is derived with PBKDF2-HMAC-SHA256
(``hashlib.pbkdf2_hmac``, OpenSSL), 100,000 iterations, over a fixed, versioned salt. Why:

* *slow*: a fingerprint that leaks (a log, an annotation readable by anyone who can read
  the Deployment) must not let an attacker test guesses of a weak secret cheaply, which an
  unsalted SHA-1 did for Stakater Reloader (issue 594); each guess costs ~100,000 hash
  rounds;
* *fixed salt*: two nodes must compute the same fingerprint for the same secret without
  sharing anything else, which a random per-host salt would prevent; the salt still makes
  generic precomputed tables useless. A deployment may add its own context with
  ``AGENTOS_SECRETS_FINGERPRINT_SALT`` (it must then be equal wherever fingerprints are
  compared);
* *short*: 64 bits (16 hex digits) after the ``fp1:`` prefix, enough to tell versions
  apart, too little to be useful as a key.

PBKDF2 was chosen over scrypt because scrypt's memory cost (16 MiB per call at the usual
parameters) would dominate the sidecar's footprint.
"""

from __future__ import annotations

import os

# hashlib and hmac load OpenSSL (several milliseconds): they are imported where used, so
# that ``import agentos_secrets`` stays cheap. typing likewise, for annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["FINGERPRINT_PREFIX", "Secret", "fingerprint_bytes"]

FINGERPRINT_PREFIX = "fp1:"
_FINGERPRINT_SALT = b"agentos-secrets/fingerprint/v1"
_FINGERPRINT_ITERATIONS = 100_000
_FINGERPRINT_BYTES = 8
_MASK = "**********"

_fingerprint_cache: dict[bytes, str] = {}
_FINGERPRINT_CACHE_MAX = 256


SALT_VARIABLE = "AGENTOS_SECRETS_FINGERPRINT_SALT"


def _salt(extra: str | None = None) -> bytes:
    if extra is None:
        extra = os.environ.get(SALT_VARIABLE, "")
    return _FINGERPRINT_SALT + (b"/" + extra.encode() if extra else b"")


def fingerprint_bytes(data: bytes, *, extra_salt: str | None = None) -> str:
    """Return the safe fingerprint (``fp1:`` + 16 hex digits) of ``data``.

    ``extra_salt`` is the deployment's ``AGENTOS_SECRETS_FINGERPRINT_SALT``; None reads
    it from this process's environment (``check --env-file`` passes the file's own).
    Results are memoised in-process by a SHA-256 of (salt, data) so that repeated
    fingerprints of the same value cost one fast hash, not the slow derivation.
    """
    import hashlib

    salt = _salt(extra_salt)
    memo_key = hashlib.sha256(salt + b"\0" + data).digest()
    cached = _fingerprint_cache.get(memo_key)
    if cached is not None:
        return cached
    # The standard library's OpenSSL-backed PBKDF2 gives the same bytes as
    # ``cryptography``'s; loading ``cryptography`` would add ~8 MiB to the sidecar's
    # resident memory (budget: 30 MiB), for about 10 ms saved per derivation.
    derived = hashlib.pbkdf2_hmac(
        "sha256", data, salt, _FINGERPRINT_ITERATIONS, dklen=_FINGERPRINT_BYTES
    )
    result = FINGERPRINT_PREFIX + derived.hex()
    if len(_fingerprint_cache) >= _FINGERPRINT_CACHE_MAX:
        _fingerprint_cache.clear()
    _fingerprint_cache[memo_key] = result
    return result


def _encode(text: str) -> bytes:
    """UTF-8 of ``text``; a lone surrogate is a ValueError that does not carry the text."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    # Outside the except block: the UnicodeEncodeError holds the whole text (``.object``).
    raise ValueError("Secret value is not valid Unicode (it contains a lone surrogate)")


class Secret:
    """A secret value that masks itself everywhere except ``reveal()``.

    ``name`` and ``source`` are metadata (safe to print); the content is held as bytes.
    """

    __slots__ = ("_value", "name", "source")
    _value: bytes
    name: str
    source: str

    def __init__(
        self, value: str | bytes | bytearray | memoryview, *, name: str = "", source: str = ""
    ) -> None:
        if type(value) is not bytes:
            if isinstance(value, str):
                value = _encode(value)
            elif isinstance(value, bytes | bytearray | memoryview):
                value = bytes(value)
            else:
                raise TypeError("Secret value must be str or bytes")
        # __setattr__ refuses: write the slots through their descriptors (twice as fast
        # as object.__setattr__; the Loader builds one Secret per file read).
        _set_value(self, value)
        _set_name(self, name)
        _set_source(self, source)

    # -- on purpose -----------------------------------------------------------------
    def reveal(self) -> str:
        """The content as text (the Loader only builds Secrets from strict UTF-8)."""
        return self._value.decode("utf-8")

    def reveal_bytes(self) -> bytes:
        """The content as raw bytes."""
        return self._value

    def fingerprint(self) -> str:
        """A short, slow-to-invert identifier that is safe to print and compare."""
        return fingerprint_bytes(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    # -- never by accident ------------------------------------------------------------
    def __repr__(self) -> str:
        label = f" name={self.name!r}" if self.name else ""
        src = f" source={self.source!r}" if self.source else ""
        return f"Secret({_MASK}{label}{src})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        from hmac import compare_digest as _compare

        if isinstance(other, Secret):
            return _compare(self._value, other._value)
        if isinstance(other, str):
            return _compare(self._value, other.encode("utf-8", "surrogatepass"))
        if isinstance(other, bytes):
            return _compare(self._value, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    # A hash of the value would be an oracle; Secrets are not dict keys.
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, key: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled; call reveal() on purpose")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("Secret values cannot be pickled; call reveal() on purpose")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self

    def __getstate__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled; call reveal() on purpose")


# The slots' own descriptors (what object.__setattr__ would find, minus the lookup).
_set_value = Secret.__dict__["_value"].__set__
_set_name = Secret.__dict__["name"].__set__
_set_source = Secret.__dict__["source"].__set__
