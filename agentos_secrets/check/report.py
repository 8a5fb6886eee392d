"""Writing a check's result: text for people, JSON for scripts, SARIF for code scanning,
GitHub workflow commands for pull-request annotations, JUnit XML for other CI systems.

All are built from the same :class:`Report`; none of them sees a secret value, because
findings never hold one. Each points at the file, line and column to change
(:mod:`.locate`). The JSON layout is versioned by ``schema/report-v1.json`` (shipped in
the package); SARIF follows 2.1.0 as GitHub code scanning wants it (relative URIs
against ``%SRCROOT%``, every rule with its full description and help from
``docs/rules.md``, stable fingerprints); see :mod:`.ci_formats` for the other two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .findings import RULES, Finding, Severity
from .textsafe import one_line

__all__ = ["DOCS_URI", "Report", "one_line", "render"]

DOCS_URI = "https://github.com/nexixai/agentos-secrets/blob/main/docs/rules.md"
SCHEMA_ID = "agentos-secrets/check-report/v1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


class Report(NamedTuple):
    """The outcome of one run: findings (suppressed ones included) and the verdict."""

    findings: Sequence[Finding]
    profile: str
    fail_on: Severity
    inputs: Sequence[tuple[str, str]]  # (kind, source)
    version: str
    #: The directory finding files are relative to (absolute).
    root: str = "."

    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.active() if f.severity is severity)

    @property
    def suppressed(self) -> int:
        return sum(1 for f in self.findings if f.suppressed is not None)

    @property
    def exit_code(self) -> int:
        """1 when an unsuppressed finding is at or above ``--fail-on``, else 0."""
        return int(any(f.severity.rank >= self.fail_on.rank for f in self.active()))

    def ordered(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (f.suppressed is not None, *f.sort_key()))


# -- text ------------------------------------------------------------------------------------


def _text(report: Report) -> str:
    inputs = one_line(", ".join(f"{kind} {source}" for kind, source in report.inputs))
    lines = [
        f"agentos-secrets check: profile {report.profile}, fail on {report.fail_on.value}",
        f"checked: {inputs}",
        "",
    ]
    for f in report.ordered():
        label = "SUPPRESSED" if f.suppressed is not None else f.severity.value.upper()
        lines.append(f"{label:<8} {f.rule.id} {f.rule.name}")
        spot = f.spot()
        where = f"{spot}  {f.where()}" if spot else f.where()
        lines.append(f"  at:   {one_line(where)}")
        lines.append(f"  what: {one_line(f.message)}")
        if f.suppressed is not None:
            lines.append(f"  why suppressed: {one_line(f.suppressed)}")
        else:
            lines.append(f"  fix:  {f.fix}")
        lines.append("")
    errors, warnings = report.count(Severity.ERROR), report.count(Severity.WARNING)
    verdict = "FAILED" if report.exit_code else "passed"
    lines.append(
        f"{errors} error(s), {warnings} warning(s), {report.suppressed} suppressed: "
        f"{verdict} (exit {report.exit_code})"
    )
    return "\n".join(lines) + "\n"


# -- JSON ------------------------------------------------------------------------------------


def _finding_json(f: Finding) -> dict[str, object]:
    return {
        "ruleId": f.rule.id,
        "ruleName": f.rule.name,
        "severity": f.severity.value,
        "message": f.message,
        "fix": f.fix,
        "location": {
            "object": f.obj,
            "field": f.field,
            "variable": f.variable,
            "path": f.path,
            "source": f.source,
            "file": f.file,
            "line": f.line,
            "column": f.column,
        },
        "suppressed": None
        if f.suppressed is None
        else {"reason": f.suppressed, "kind": f.suppression_kind},
        "help": f"{DOCS_URI}#{f.rule.help_anchor}",
    }


def _json(report: Report) -> str:
    import json

    doc = {
        "schema": SCHEMA_ID,
        "tool": {"name": "agentos-secrets", "version": report.version},
        "profile": report.profile,
        "failOn": report.fail_on.value,
        "inputs": [{"kind": kind, "source": source} for kind, source in report.inputs],
        "findings": [_finding_json(f) for f in report.ordered()],
        "summary": {
            "errors": report.count(Severity.ERROR),
            "warnings": report.count(Severity.WARNING),
            "suppressed": report.suppressed,
            "passed": report.exit_code == 0,
        },
        "exitCode": report.exit_code,
    }
    return json.dumps(doc, indent=2) + "\n"


# -- SARIF 2.1.0 -----------------------------------------------------------------------------

_RULE_IDS = sorted(RULES)


def _uri(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _sarif_rule(rule_id: str) -> dict[str, object]:
    from .rule_docs import rule_help

    r = RULES[rule_id]
    markdown = rule_help(r.id)
    return {
        "id": r.id,
        "name": r.name,
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": f"{r.summary} Fix: {r.fix}"},
        "help": {"text": markdown or r.fix, "markdown": markdown or r.fix},
        "helpUri": f"{DOCS_URI}#{r.help_anchor}",
        "defaultConfiguration": {"level": r.severity.value},
        "properties": {"profiles": list(r.profiles), "tags": ["security"]},
    }


#: The base every artifact URI is relative to: the root (``--root``), as GitHub's
#: code scanning expects for files of the repository.
SRCROOT = "SRCROOT"


def _physical(f: Finding, root: str) -> dict[str, object] | None:
    """The file and region of a finding, when it is a file under the root.

    A finding about the whole file (a variable the env file lacks) gets the region of
    the whole file, as SARIF asks for such results.
    """
    if f.file is None or f.file == "<stdin>" or f.file.startswith("../") or f.file == "..":
        return None
    region: dict[str, object] = {"startLine": f.line or 1}
    if f.line and f.column:
        region["startColumn"] = f.column
    elif not f.line:
        region["endLine"] = _line_count(root, f.file)
    return {"artifactLocation": {"uri": _uri(f.file), "uriBaseId": SRCROOT},
            "region": region}


def _line_count(root: str, file: str) -> int:
    """The lines of a file the check has read already (1 when it cannot be read now)."""
    import os

    from .errors import InputError
    from .reading import MAX_MANIFEST_BYTES, read_file

    try:
        text = read_file(os.path.join(root, file), "--manifests", MAX_MANIFEST_BYTES)
    except InputError:
        return 1
    return max(1, len(text.splitlines()))


def _identity(f: Finding) -> str:
    """A stable identity across runs (rule, object, field, variable: names only), so that
    code scanning matches a finding with itself when lines move."""
    import hashlib

    key = "\0".join((f.rule.id, f.obj or "", f.field or "", f.variable or ""))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _sarif_result(f: Finding, root: str) -> dict[str, object]:
    location: dict[str, object] = {}
    physical = _physical(f, root)
    if physical is not None:
        location["physicalLocation"] = physical
    logical = f.obj or f.variable
    if logical:
        location["logicalLocations"] = [{
            "fullyQualifiedName": f"{f.obj}:{f.field}" if f.obj and f.field else logical,
            "kind": "resource" if f.obj else "variable",
        }]
    result: dict[str, object] = {
        "ruleId": f.rule.id,
        "ruleIndex": _RULE_IDS.index(f.rule.id),
        "level": f.severity.value,
        "message": {"text": f"{f.message}. Fix: {f.fix}"},
        "locations": [location] if location else [],
        "partialFingerprints": {"agentosSecretsFinding/v1": _identity(f)},
    }
    if f.suppressed is not None:
        result["suppressions"] = [
            {"kind": f.suppression_kind or "external", "justification": f.suppressed}
        ]
    return result


def _root_uri(root: str) -> str:
    from pathlib import Path

    uri = Path(root).resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _sarif(report: Report) -> str:
    import json

    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "agentos-secrets",
                        "version": report.version,
                        "semanticVersion": report.version,
                        "informationUri": DOCS_URI,
                        "rules": [_sarif_rule(i) for i in _RULE_IDS],
                    }
                },
                "originalUriBaseIds": {
                    SRCROOT: {"uri": _root_uri(report.root),
                              "description": {"text": "The directory paths are relative "
                                              "to (--root, else where check ran)."}},
                },
                "invocations": [
                    {"executionSuccessful": True, "exitCode": report.exit_code}
                ],
                "columnKind": "unicodeCodePoints",
                "results": [_sarif_result(f, report.root) for f in report.ordered()],
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _github(report: Report) -> str:
    from .ci_formats import github

    return github(report)


def _junit(report: Report) -> str:
    from .ci_formats import junit

    return junit(report)


_FORMATS = {"text": _text, "json": _json, "sarif": _sarif, "github": _github,
            "junit": _junit}


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt``: ``text``, ``json``, ``sarif``, ``github`` or ``junit``."""
    return _FORMATS[fmt](report)
