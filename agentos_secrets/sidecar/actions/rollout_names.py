"""The ``rollout`` action's flag checks: Kubernetes name rules for its flags.

A Deployment name is a DNS-1123 subdomain, a namespace a DNS-1123 label and an annotation
key ``[prefix/]name`` (apimachinery/pkg/util/validation). A malformed value is a
:class:`RolloutConfigError` that says which rule it breaks and never shows the value.
Kept apart from the action and its transport: these are pure checks, run once at
start-up (and on the service account's ``namespace`` file).
"""

from __future__ import annotations

import re

__all__ = ["RolloutConfigError"]

# Kubernetes name rules (apimachinery/pkg/util/validation): a Deployment name is a DNS-1123
# subdomain, a namespace a DNS-1123 label; an annotation key is [prefix/]name.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


class RolloutConfigError(ValueError):
    """A ``rollout`` flag is malformed. The message names the flag and the value's rule."""


def _check_subdomain(flag: str, value: str) -> None:
    if len(value) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(value):
        raise RolloutConfigError(
            f"{flag}: not a valid Kubernetes name (the value is not shown)"
            " (lower-case letters, digits, '-' and '.', at most 253 characters)"
        )


def _check_label(flag: str, value: str) -> None:
    if len(value) > 63 or not _DNS_LABEL_RE.fullmatch(value):
        raise RolloutConfigError(
            f"{flag}: not a valid Kubernetes namespace (the value is not shown)"
            " (lower-case letters, digits and '-', at most 63 characters)"
        )


def _check_annotation(value: str) -> None:
    prefix, _, name = value.rpartition("/")
    if prefix:
        _check_subdomain("--annotation prefix", prefix)
    if len(name) > 63 or not _QUALIFIED_NAME_RE.fullmatch(name):
        raise RolloutConfigError(
            "--annotation: not a valid annotation key (the value is not shown; [prefix/]name,"
            " the name is at most 63 letters, digits, '-', '_' or '.', starting and ending"
            " alphanumeric)"
        )
