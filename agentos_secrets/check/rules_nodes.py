"""Rules AS3xx: comparing this node with another without either revealing the secret.

``agentos-secrets fingerprint NAME`` prints the Loader's safe fingerprint on one node;
``check --expect-fingerprint NAME=FP`` on the other resolves NAME through the same Loader
and compares. Fingerprints are slow to invert (PBKDF2), so passing one around a CI log
does not hand out the secret.
"""

from __future__ import annotations

import re

from ..errors import SecretError
from ..loader import Loader
from ..secret import SALT_VARIABLE, fingerprint_bytes
from ..sources import normalize_name
from .errors import InputError
from .findings import Finding, rule
from .inputs import Environment

__all__ = ["check_fingerprints", "parse_expectation"]

_FP = re.compile(r"fp1:[0-9a-f]{16}\Z")


def parse_expectation(text: str) -> tuple[str, str]:
    """``NAME=fp1:...`` -> (NAME, fingerprint); a malformed one is a bad argument.

    The errors show nothing of the argument: a secret pasted in place of ``NAME=FP`` (a
    base64 value even has its ``=``) must not be echoed into a CI log.
    """
    name, sep, fingerprint = text.partition("=")
    fingerprint = fingerprint.strip().lower()
    usage = ("expected NAME=fp1:<16 hex digits>, as printed by 'agentos-secrets fingerprint "
             "NAME' (the argument is not shown)")
    if not sep or not _FP.match(fingerprint):
        raise InputError(f"--expect-fingerprint: {usage}")
    try:
        name = normalize_name(name)
    except SecretError:
        name = ""
    if not name:
        raise InputError("--expect-fingerprint: the part before '=' is not a variable name "
                         "(letters, digits and underscores; the argument is not shown)")
    return name, fingerprint


def check_fingerprints(env: Environment, expected: dict[str, str]) -> list[Finding]:
    """AS301/AS302 for each expected fingerprint."""
    loader = Loader(env=dict(env.variables))
    src = env.source or "environment"
    findings: list[Finding] = []
    for name, fingerprint in expected.items():
        try:
            secret = loader.require(name)
        except SecretError as exc:
            findings.append(Finding(rule("AS302"), f"cannot compare {name}: {exc}",
                                    variable=name, path=exc.path, source=src))
            continue
        # With the checked environment's salt, as the service there computes it.
        actual = fingerprint_bytes(
            secret.reveal_bytes(), extra_salt=env.variables.get(SALT_VARIABLE, "")
        )
        if actual != fingerprint:  # fingerprints are public: no constant-time need
            findings.append(Finding(
                rule("AS301"),
                f"{name} has fingerprint {actual} here, {fingerprint} was expected",
                variable=name, source=src))
    return findings
