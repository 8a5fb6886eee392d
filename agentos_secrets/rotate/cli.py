"""``agentos-secrets rotate NAME``: the rotation runbook as one command.

Exit status: 0 done (or ``--plan`` printed, or ``--abort`` rolled back), 1 a gate failed,
the rotation aborted itself (``--test-cmd`` failed), another rotation holds the Secret,
or the API refused a request, 2 bad usage or refused input (no value source, a bad
flag, an unknown context, a Secret written by another controller without
``--store-cmd``, nothing to resume). See docs/rotate.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_CONTEXTS = 16


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A stray word is most often a value typed where it must never be: never echo it.
        if message.startswith("unrecognized arguments"):
            message = ("unrecognized arguments (not shown: a secret value is never given on"
                       " the command line; use --generate, --from-file PATH or stdin)")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0 <= value <= 86400 * 7 or value != value:
        raise argparse.ArgumentTypeError("expected 0 to 604800 seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agentos-secrets rotate",
        description="Rotate key NAME of a Kubernetes Secret without a rejected request: "
        "stage NAME_PREVIOUS=new, gate on every consuming pod's sidecar /status, switch "
        "NAME=new and NAME_PREVIOUS=old in one write, gate, drain, drop NAME_PREVIOUS, gate. "
        "State lives in the Secret's annotations: --resume finishes an interrupted rotation, "
        "--abort rolls it back. Exit status: 0 done, 1 a gate failed or the rotation "
        "aborted, 2 bad usage or refused input. See docs/rotate.md.",
    )
    parser.add_argument("name", metavar="NAME", help="the key in the Secret to rotate")
    target = parser.add_argument_group("target")
    target.add_argument("--secret", default="agentos-secrets", help="the Secret's name"
                        " (default: agentos-secrets)")
    target.add_argument("--namespace", "-n", help="default: the context's namespace")
    target.add_argument("--context", action="append", default=[], metavar="CONTEXT",
                        help="kubeconfig context; repeat for federation (one Secret per node;"
                        " each phase runs on the last given first, then the others)")
    target.add_argument("--kubeconfig", metavar="PATH", help="default: KUBECONFIG,"
                        " ~/.kube/config, else the in-cluster service account")
    target.add_argument("--selector", "-l", metavar="LABELS",
                        help="only pods matching this label selector are gated")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="print phases, pods, gates and"
                      " timeouts; change nothing")
    mode.add_argument("--resume", action="store_true", help="finish the rotation in progress")
    mode.add_argument("--abort", action="store_true", help="roll the rotation in progress"
                      " back to the last state in which nothing is rejected")
    value = parser.add_argument_group("the new value (never on the command line)")
    value.add_argument("--generate", action="store_true", help="a random value: 32 bytes,"
                       " URL-safe base64 (43 characters) unless --length/--alphabet")
    value.add_argument("--length", type=int, help="--generate: number of characters")
    value.add_argument("--alphabet", help="--generate: urlsafe, alnum, hex or the characters")
    value.add_argument("--from-file", metavar="PATH", help="read the value from PATH"
                       " ('-' or a pipe on stdin: standard input)")
    cmds = parser.add_argument_group("commands (run without a shell, value on stdin)")
    cmds.add_argument("--test-cmd", metavar="CMD", help="test the new value before the"
                      " switch; a non-zero exit aborts cleanly")
    cmds.add_argument("--revoke-cmd", metavar="CMD", help="revoke the old value at the end")
    cmds.add_argument("--store-cmd", metavar="CMD", help="write to the external store that"
                      " owns the Secret (JSON on stdin, see docs/rotate.md)")
    cmds.add_argument("--cmd-timeout", type=_positive, default=120.0, metavar="S")
    timing = parser.add_argument_group("gates and timing (seconds)")
    timing.add_argument("--gate-timeout", type=_positive, default=180.0, metavar="S",
                        help="per gate (default 180: the kubelet's 60-90 s sync twice over)")
    timing.add_argument("--poll", type=_positive, default=2.0, metavar="S")
    timing.add_argument("--grace", type=_positive, default=600.0, metavar="S",
                        help="drain: wait this long after the switch (default 600, the"
                        " Loader's grace window)")
    timing.add_argument("--quiet", type=_positive, default=60.0, metavar="S",
                        help="drain: no 'previous' verify match for this long (default 60)")
    timing.add_argument("--drain-timeout", type=_positive, default=1800.0, metavar="S")
    timing.add_argument("--refresh-interval", type=_positive, default=60.0, metavar="S",
                        help="--store-cmd: re-check the pods this long after the end")
    api = parser.add_argument_group("API client")
    api.add_argument("--qps", type=float, default=5.0, help="client-side request rate"
                     " limit (default 5, like client-go)")
    api.add_argument("--burst", type=int, default=10, help="default 10, like client-go")
    api.add_argument("--workers", type=int, default=8, help="parallel /status reads")
    api.add_argument("--status-token-key", default="AGENTOS_SERVICE_TOKEN", metavar="KEY",
                     help="the Secret key whose value /status accepts (X-AgentOS-Token)")
    parser.add_argument("--output", choices=("auto", "tty", "plain", "json"), default="auto",
                        help="auto: a live view on a terminal, timestamped lines otherwise")
    return parser


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not _KEY.fullmatch(args.name) or len(args.name) > 200:
        return "NAME: expected a key like AGENTOS_SERVICE_TOKEN (letters, digits, _)"
    if args.name.endswith("_PREVIOUS"):
        return "NAME: give the key itself; NAME_PREVIOUS is managed by rotate"
    if not _DNS_SUBDOMAIN.fullmatch(args.secret) or len(args.secret) > 253:
        return "--secret: not a valid Secret name"
    if args.namespace is not None and (
        not _DNS_LABEL.fullmatch(args.namespace) or len(args.namespace) > 63
    ):
        return "--namespace: not a valid namespace name"
    if len(set(args.context)) != len(args.context):
        return "--context: each context once"
    if len(args.context) > MAX_CONTEXTS:
        return f"--context: at most {MAX_CONTEXTS} contexts"
    if not 0.1 <= args.qps <= 10000 or not 1 <= args.burst <= 10000:
        return "--qps must be in [0.1, 10000] and --burst in [1, 10000]"
    if args.cmd_timeout <= 0:
        return "--cmd-timeout: must be more than 0"
    if args.selector is not None and (
        len(args.selector) > 4096 or not args.selector.isprintable()
    ):
        return "--selector: at most 4096 printable characters"
    if not 1 <= args.workers <= 64:
        return "--workers: 1 to 64"
    if args.poll <= 0:
        return "--poll: must be more than 0"
    if not _KEY.fullmatch(args.status_token_key) or len(args.status_token_key) > 200:
        return "--status-token-key: expected a key name (at most 200 characters)"
    changing = not (args.plan or args.resume or args.abort)
    if (args.generate or args.from_file) and not changing:
        return "--generate/--from-file start a rotation; not with --plan, --resume or --abort"
    if args.generate and args.from_file:
        return "--generate and --from-file: choose one"
    if (args.length is not None or args.alphabet) and not args.generate:
        return "--length/--alphabet go with --generate"
    return None


def _output_mode(choice: str) -> str:
    if choice != "auto":
        return choice
    return "tty" if sys.stderr.isatty() else "plain"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = _usage_problem(args)
    if problem:
        print(f"agentos-secrets rotate: {problem}", file=sys.stderr)
        return 2

    from .commands import parse_command
    from .progress import Reporter

    reporter = Reporter(_output_mode(args.output))
    try:
        commands = {
            flag: parse_command(text, flag) if text else None
            for flag, text in (("--test-cmd", args.test_cmd), ("--revoke-cmd", args.revoke_cmd),
                               ("--store-cmd", args.store_cmd))
        }
    except ValueError as exc:
        reporter.event("error", str(exc), code=2)
        return 2

    new_value = None
    if not (args.plan or args.resume or args.abort):
        from .values import ValueInputError, generate, read_value

        try:
            if args.generate:
                new_value = generate(length=args.length, alphabet=args.alphabet)
            elif args.from_file:
                new_value = read_value(args.from_file)
            elif sys.stdin is not None and not sys.stdin.isatty():
                new_value = read_value("-")
            else:
                raise ValueInputError("no new value: give --generate, --from-file PATH or"
                                      " pipe it on stdin (or --plan, --resume, --abort)")
        except ValueInputError as exc:
            message = str(exc)
            reporter.event("error", message, code=2)
            return 2
        reporter.add_secret(new_value.reveal_bytes())

    from .engine import Engine, Node, RotateError, Settings
    from .kube import KubeError, KubeUnavailable, RateLimiter, connect

    nodes: list[Node] = []
    try:
        for context in args.context or [None]:
            kube = connect(kubeconfig=args.kubeconfig, context=context,
                           namespace=args.namespace,
                           limiter=RateLimiter(args.qps, args.burst),
                           pool_size=args.workers + 2)
            nodes.append(Node(kube.name, kube, kube.namespace, args.secret))
    except KubeUnavailable as exc:
        reporter.event("error", str(exc), code=2)
        for node in nodes:
            node.kube.close()
        return 2
    settings = Settings(
        key=args.name, gate_timeout=args.gate_timeout, poll=args.poll, grace=args.grace,
        quiet=args.quiet, drain_timeout=args.drain_timeout,
        test_cmd=commands["--test-cmd"], revoke_cmd=commands["--revoke-cmd"],
        store_cmd=commands["--store-cmd"], cmd_timeout=args.cmd_timeout,
        refresh_interval=args.refresh_interval, status_token_key=args.status_token_key,
        workers=args.workers, selector=args.selector,
    )
    engine = Engine(nodes, settings, reporter)
    code = 1
    try:
        if args.plan:
            code = engine.plan()
        elif args.resume:
            code = engine.resume()
        elif args.abort:
            code = engine.abort()
        else:
            assert new_value is not None
            code = engine.start(new_value)
    except RotateError as exc:
        reporter.event("error", str(exc), code=exc.code)
        code = exc.code
    except KubeError as exc:
        reporter.event("error", f"Kubernetes API: {exc.message}", code=1,
                       status=exc.status)
        code = 1
    except KeyboardInterrupt:
        reporter.event("error", "interrupted: the state is in the Secret's annotations;"
                       " 'rotate --resume' finishes, 'rotate --abort' rolls back", code=1)
        code = 1
    finally:
        reporter.close()
        for node in nodes:
            node.kube.close()
        requests = sum(n.kube.requests_sent for n in nodes)
        retries = sum(n.kube.retries for n in nodes)
        if args.output == "json":
            reporter.event("exit", f"exit {code}", code=code, api_requests=requests,
                           retries=retries)
    return code
