"""``agentos-secrets check``: parse arguments, run the rules, print, pick the exit code.

Exit codes are a contract CI scripts rely on:

* 0: no unsuppressed finding at or above ``--fail-on``;
* 1: at least one such finding;
* 2: could not evaluate: bad arguments, kubectl missing or kustomize failing, invalid
  YAML, an unreadable env file, or nothing to check. Never 0 for an empty input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .errors import InputError
from .findings import RULES, Finding, Severity
from .inputs import Environment, Manifests, load_environment, load_manifests
from .reading import shown_argument

__all__ = ["main"]

EXIT_OK, EXIT_FINDINGS, EXIT_UNUSABLE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, whose error messages never echo a value.

    argparse quotes what it refuses (``invalid choice: 'VALUE'``, ``unrecognized
    arguments: VALUE``): a secret pasted where a flag value was expected would land in a
    CI log. Messages keep the flag and the accepted choices; unrecognized arguments are
    shown only when they look like flags (``--nmae``), and then without any ``=value``.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE, f"{self.prog}: error: {_redact_argparse(message)}\n")


def _redact_argparse(message: str) -> str:
    import re

    head, sep, rest = message.partition("unrecognized arguments: ")
    if sep:
        words = rest.split(" ")
        flags = [m.group(0) for w in words if (m := re.match(r"--?[A-Za-z][A-Za-z0-9-]*\Z",
                                                             w.split("=", 1)[0]))]
        hidden = len(words) - len(flags)
        shown = ", ".join(flags)
        more = f"{hidden} other argument(s), not shown" if hidden else ""
        return f"{head}unrecognized arguments: " + "; ".join(p for p in (shown, more) if p)
    message = re.sub(r"invalid choice: '(?:[^'\\]|\\.)*'", "invalid choice (not shown)",
                     message)
    # "argument --x: expected one argument" and the like quote no value; anything else
    # argparse might quote is elided.
    return re.sub(r"(invalid \w+ value): '(?:[^'\\]|\\.)*'", r"\1 (not shown)", message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agentos-secrets check",
        description="Find before a deploy what would break it or its next rotation: "
        "the environment and secret files, the manifests, and fingerprints across nodes. "
        "Never prints a secret value.",
        epilog="exit codes: 0 nothing at or above --fail-on, 1 findings, 2 could not "
        "evaluate (bad arguments, kubectl/kustomize failing, invalid YAML, nothing to "
        "check). Rules: docs/rules.md or --list-rules.",
    )
    parser.add_argument("--env-file", metavar="FILE",
                        help="check the variables of FILE (KEY=value lines) instead of "
                        "this process's environment")
    parser.add_argument("--no-env", action="store_true",
                        help="do not check this process's environment (manifests only)")
    parser.add_argument("--profile", choices=("prod", "dev"),
                        help="the profile to check for (default: AGENTOS_PROFILE of the "
                        "checked environment; anything but prod means dev)")
    parser.add_argument("--manifests", action="append", default=[], metavar="PATH",
                        help="a kustomization directory (rendered with kubectl kustomize), "
                        "a YAML file, or - for stdin; repeatable")
    parser.add_argument("--expect-fingerprint", action="append", default=[],
                        metavar="NAME=FP",
                        help="fail (AS301) when this node's fingerprint of NAME differs "
                        "from FP (printed by 'agentos-secrets fingerprint NAME' elsewhere)")
    parser.add_argument("--ignore", action="append", default=[], metavar="RULE=REASON",
                        help="suppress every finding of RULE; a reason is required")
    parser.add_argument("--format", choices=("text", "json", "sarif", "github", "junit"),
                        default="text",
                        help="text (default), json, sarif (code scanning), github "
                        "(workflow-command annotations) or junit (XML test report)")
    parser.add_argument("--root", metavar="DIR",
                        help="show file paths relative to DIR (default: the working "
                        "directory; in CI, the repository's root)")
    parser.add_argument("--fail-on", choices=("error", "warning"), default="error",
                        help="the lowest severity that makes the exit code 1 "
                        "(default: error)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the report to FILE instead of stdout")
    parser.add_argument("--list-rules", action="store_true",
                        help="print every rule ID, severity and name, then exit 0")
    return parser


def _list_rules() -> str:
    return "\n".join(
        f"{r.id}  {r.severity.value:<7}  {r.name:<28}  {r.summary}" for r in RULES.values()
    ) + "\n"


def _with_lines(findings: list[Finding], env: Environment) -> list[Finding]:
    """Point env findings at the env-file line that set their (first) variable."""
    if not env.lines:
        return findings
    return [
        f._replace(line=env.lines.get((f.variable or "").split(",")[0]))
        for f in findings
    ]


def _located(findings: list[Finding], loaded: list[Manifests], env_file: str | None,
             root: str) -> list[Finding]:
    """Every finding with the file, line and column to change (see :mod:`.locate`)."""
    from .locate import kustomization_of, locate, new_cache, shown_file

    cache = new_cache()
    objects = {m.source: {o.ref: o for o in reversed(m.objects)} for m in loaded}
    result: list[Finding] = []
    for f in findings:
        if f.obj is None:
            if env_file is not None and f.source == env_file:
                f = f._replace(file=shown_file(env_file, root),
                               column=1 if f.line else None)
            result.append(f)
            continue
        obj = objects.get(f.source or "", {}).get(f.obj)
        spot = locate(obj, f.field, cache) if obj is not None else None
        if spot is not None and spot.file is not None:
            f = f._replace(file=shown_file(spot.file, root), line=spot.line,
                           column=spot.column)
        elif spot is not None and obj is not None and obj.source is not None:
            f = f._replace(file="<stdin>", line=spot.line, column=spot.column)
        elif f.source and f.source != "<stdin>":
            directory = kustomization_of(f.source)
            f = f._replace(file=shown_file(directory or f.source, root), line=None,
                           column=None)
        result.append(f)
    return result


def _run(args: argparse.Namespace) -> tuple[list[Finding], list[tuple[str, str]],
                                              list[Manifests], str]:
    from . import rules_env
    from .suppress import parse_ignores

    parse_ignores(args.ignore)  # fail fast on a malformed suppression
    expected: dict[str, str] = {}
    if args.expect_fingerprint:
        from . import rules_nodes

        expected = dict(rules_nodes.parse_expectation(e) for e in args.expect_fingerprint)
    if args.no_env and (args.env_file or expected):
        raise InputError("--no-env cannot be combined with --env-file or --expect-fingerprint")
    env = load_environment(args.env_file, args.profile)
    findings: list[Finding] = []
    inputs: list[tuple[str, str]] = []
    check_env = not args.no_env and (args.env_file is not None or env.has_agentos())
    if check_env:
        findings.extend(_with_lines(rules_env.check_environment(env), env))
        inputs.append(("environment", args.env_file or "this process"))
    if expected:
        from .rules_nodes import check_fingerprints

        findings.extend(_with_lines(check_fingerprints(env, expected), env))
        inputs.append(("fingerprints", ", ".join(sorted(expected))))
    loaded = [load_manifests(spec) for spec in args.manifests]
    if loaded:  # the manifest rules (and yaml) load only when there are manifests
        from . import rules_manifests
    for manifests in loaded:
        if not rules_manifests.relevant(manifests):
            raise InputError(
                f"--manifests {manifests.source}: no Deployment, StatefulSet or DaemonSet "
                "and no Secret agentos-secrets (nothing to check)"
            )
        findings.extend(rules_manifests.check_manifests(manifests, env.profile))
        inputs.append(("manifests", manifests.source))
    if not inputs:
        raise InputError(
            "nothing to check: no AGENTOS_* variable in this environment; give --env-file, "
            "--manifests or --expect-fingerprint"
        )
    return findings, inputs, loaded, env.profile


def _root(given: str | None) -> str:
    """``--root`` (an existing directory), else the working directory."""
    if given is None:
        return os.getcwd()
    if not os.path.isdir(given):
        raise InputError(f"--root {shown_argument(given)}: not a directory")
    return given


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: 0 for --help, 2 for bad arguments
        return int(exc.code or 0)
    if args.list_rules:
        sys.stdout.write(_list_rules())
        return EXIT_OK
    from .report import Report, render
    from .suppress import apply, parse_ignores

    try:
        root = _root(args.root)
        findings, inputs, loaded, profile = _run(args)
        findings = apply(findings, parse_ignores(args.ignore), loaded)
        findings = _located(findings, loaded, args.env_file, root)
    except InputError as exc:
        from .report import one_line

        print(f"agentos-secrets check: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_UNUSABLE
    from .. import __version__

    report = Report(findings, profile, Severity(args.fail_on), inputs, __version__,
                    os.path.realpath(root))
    text = render(report, args.format)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            print(f"agentos-secrets check: error: --output {shown_argument(args.output)}: "
                  f"{exc.strerror}", file=sys.stderr)
            return EXIT_UNUSABLE
    else:
        sys.stdout.write(text)
    return report.exit_code
