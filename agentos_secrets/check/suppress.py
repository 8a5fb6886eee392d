"""Suppressions: a finding may be waived, never silently.

Two ways, both requiring a reason: ``--ignore AS201=reason`` on the command line (every
finding of that rule), or the annotation ``secrets.agentos.io/ignore`` on the object's
metadata (findings of that object only), holding ``AS201=reason`` entries separated by
``;`` or newlines. A suppressed finding stays in every report, marked with its reason,
and no longer counts toward the exit code. A malformed suppression is a bad input
(exit 2), not an ignored one: a typo must not hide or reveal findings by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .errors import InputError
from .findings import RULES, Finding
from .inputs import Manifests

__all__ = ["IGNORE_ANNOTATION", "apply", "parse_entries", "parse_ignores"]

IGNORE_ANNOTATION = "secrets.agentos.io/ignore"
_RULE_ID = re.compile(r"AS\d{3}\Z")


def _entry(text: str, where: str) -> tuple[str, str]:
    # Split and strip rather than one regular expression: a lazy ``(.*?)\s*\Z`` is
    # quadratic on a long run of blanks (20,000 spaces in an annotation took 2 s).
    rule_id, sep, reason = text.partition("=")
    rule_id, reason = rule_id.strip(), reason.strip()
    if not sep or not _RULE_ID.match(rule_id):
        raise InputError(f"{where}: expected RULE=reason (e.g. AS201=the app reloads itself)")
    if rule_id not in RULES:
        raise InputError(f"{where}: unknown rule {rule_id} (see docs/rules.md)")
    if not reason:
        raise InputError(f"{where}: suppressing {rule_id} needs a reason after '='")
    return rule_id, reason


def parse_ignores(values: Sequence[str]) -> dict[str, str]:
    """``--ignore`` values -> {rule ID: reason}."""
    return dict(_entry(v, "--ignore") for v in values)


def parse_entries(text: str, where: str) -> dict[str, str]:
    """An annotation's value -> {rule ID: reason}."""
    parts = [p for p in re.split(r"[;\n]", text) if p.strip()]
    if not parts:
        raise InputError(f"{where}: empty; write RULE=reason")
    return dict(_entry(p, where) for p in parts)


def _annotations(manifests: Iterable[Manifests]) -> dict[str, dict[str, str]]:
    by_object: dict[str, dict[str, str]] = {}
    for m in manifests:
        for obj in m.objects:
            value = obj.annotations.get(IGNORE_ANNOTATION)
            if value is not None:
                where = f"{obj.ref} annotation {IGNORE_ANNOTATION}"
                by_object[obj.ref] = parse_entries(str(value), where)
    return by_object


def apply(
    findings: Iterable[Finding], ignores: dict[str, str], manifests: Iterable[Manifests]
) -> list[Finding]:
    """Mark the findings waived by ``ignores`` or by their object's annotation."""
    per_object = _annotations(manifests)
    result: list[Finding] = []
    for finding in findings:
        reason = per_object.get(finding.obj or "", {}).get(finding.rule.id)
        if reason is not None:
            result.append(finding.suppress(reason, in_source=True))
        elif finding.rule.id in ignores:
            result.append(finding.suppress(ignores[finding.rule.id], in_source=False))
        else:
            result.append(finding)
    return result
