"""The CI conventions linters use: GitHub workflow commands and JUnit XML.

``--format github`` prints one workflow command per unsuppressed finding
(``::error file=F,line=L,col=C,title=T::MESSAGE``), which GitHub Actions turns into an
annotation on that line of the pull request, then a summary line. Data and properties
are escaped as the Actions runner unescapes them (``%`` ``\\r`` ``\\n``, and in
properties also ``:`` and ``,``), after every other control character is escaped by
:func:`~.textsafe.one_line`: nothing in a finding can end the command early or start
another one (``::add-mask::``, ``::stop-commands::``).

``--format junit`` writes one test case per rule and object (or variable): a failure
for an unsuppressed finding, skipped for a suppressed one, and one passing case per rule
that ran on the inputs and found nothing, so that CI systems rendering JUnit (GitLab, Jenkins, Azure
Pipelines) list what was checked. XML 1.0 cannot carry most control characters: they
are escaped by :func:`~.textsafe.one_line` before ElementTree escapes the markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .findings import RULES, Finding, Severity
from .textsafe import one_line


class Report(Protocol):
    """What these formats read of :class:`~.report.Report` (which imports this module)."""

    profile: str
    inputs: Sequence[tuple[str, str]]

    @property
    def suppressed(self) -> int: ...

    @property
    def exit_code(self) -> int: ...

    def ordered(self) -> list[Finding]: ...

    def count(self, severity: Severity) -> int: ...

__all__ = ["escape_data", "escape_property", "github", "junit"]


def escape_data(text: str) -> str:
    """A workflow command's message, as the runner unescapes it."""
    return one_line(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(f: Finding) -> str:
    level = "error" if f.severity is Severity.ERROR else "warning"
    props: list[str] = []
    if f.file and f.file != "<stdin>":
        props.append(f"file={escape_property(f.file)}")
    if f.line:
        props.append(f"line={f.line}")
        if f.column:
            props.append(f"col={f.column}")
    props.append(f"title={escape_property(f'{f.rule.id} {f.rule.name}')}")
    where = f.where()
    message = f"{f.message} ({where}). Fix: {f.fix}" if where != "-" else (
        f"{f.message}. Fix: {f.fix}")
    return f"::{level} {','.join(props)}::{escape_data(message)}"


def github(report: Report) -> str:
    lines = [_command(f) for f in report.ordered() if f.suppressed is None]
    errors, warnings = report.count(Severity.ERROR), report.count(Severity.WARNING)
    verdict = "FAILED" if report.exit_code else "passed"
    lines.append(escape_data(
        f"agentos-secrets check: {errors} error(s), {warnings} warning(s), "
        f"{report.suppressed} suppressed: {verdict} (exit {report.exit_code})"))
    return "\n".join(lines) + "\n"


def _subject(f: Finding) -> str:
    return f.obj or f.variable or f.file or f.source or "-"


def junit(report: Report) -> str:
    import xml.etree.ElementTree as ET

    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in report.ordered():
        groups.setdefault((f.rule.id, _subject(f)), []).append(f)
    rules_hit = {rule_id for rule_id, _ in groups}
    suite = ET.Element("testsuite", name="agentos-secrets check")
    failures = skipped = 0
    for (rule_id, subject), found in sorted(groups.items()):
        rule = RULES[rule_id]
        case = ET.SubElement(suite, "testcase", classname=f"agentos-secrets.{rule_id}",
                             name=one_line(f"{rule_id} {rule.name}: {subject}"))
        located = next((f for f in found if f.file), None)
        if located is not None and located.file:
            case.set("file", one_line(located.file))
            if located.line:
                case.set("line", str(located.line))
        active = [f for f in found if f.suppressed is None]
        if active:
            failures += 1
            failure = ET.SubElement(case, "failure", type=rule.severity.value,
                                    message=one_line(active[0].message))
            failure.text = _details(active)
        else:
            skipped += 1
            ET.SubElement(case, "skipped",
                          message=one_line(f"suppressed: {found[0].suppressed}"))
    families = {_FAMILY[kind] for kind, _ in report.inputs if kind in _FAMILY}
    passed = [r for r in RULES.values() if r.id not in rules_hit
              and report.profile in r.profiles and r.id[:3] in families]
    for rule in passed:
        ET.SubElement(suite, "testcase", classname=f"agentos-secrets.{rule.id}",
                      name=f"{rule.id} {rule.name}")
    suite.set("tests", str(len(groups) + len(passed)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suites = ET.Element("testsuites", name="agentos-secrets check")
    suites.append(suite)
    ET.indent(suites)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(suites, encoding="unicode") + "\n")


#: The rules each kind of input is checked by (a passing case only for rules that ran).
_FAMILY = {"environment": "AS1", "manifests": "AS2", "fingerprints": "AS3"}


def _details(found: Sequence[Finding]) -> str:
    lines = []
    for f in found:
        spot = f.spot()
        where = f"{spot}  {f.where()}" if spot else f.where()
        lines.append(one_line(f"{f.severity.value.upper()} at {where}: {f.message}"))
    lines.append(one_line(f"Fix: {found[0].fix}"))
    return "\n".join(lines)
