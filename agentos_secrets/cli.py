"""The ``agentos-secrets`` command: ``check``, ``fingerprint``, ``explain``, ``sidecar``,
``rotate``.

Each subcommand imports its implementation only when chosen, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .loader import Loader

__all__ = ["main"]


def _loader_arguments(parser: argparse.ArgumentParser) -> None:
    """The Loader options shared by ``fingerprint`` and ``explain``."""
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument(
        "--secret-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory with one file per secret (repeatable, searched in order)",
    )
    parser.add_argument(
        "--on-conflict",
        choices=("warn", "error", "prefer-file"),
        default="warn",
        help="when NAME and NAME_FILE are both set (default: warn, NAME wins)",
    )


def _loader(args: argparse.Namespace) -> Loader:
    from . import Loader

    return Loader(secret_dirs=args.secret_dir, on_conflict=args.on_conflict)


def _fingerprint(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="agentos-secrets fingerprint",
        description="Print the safe fingerprint of each named secret, resolved by the Loader "
        "from this process's environment (NAME, NAME_FILE, --secret-dir). Exit status: 0 when "
        "every secret resolved, 2 when one is missing or unreadable (the error is on stderr).",
    )
    _loader_arguments(parser)
    args = parser.parse_args(argv)
    from . import SecretError

    loader = _loader(args)
    status = 0
    for name in args.names:
        try:
            secret = loader.require(name)
        except SecretError as exc:
            print(f"agentos-secrets: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{name.strip()} {secret.fingerprint()}")
    return status


def _explain(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="agentos-secrets explain",
        description="Say where each named secret comes from and what it shadows; never the "
        "value. Exit status: 0 when every secret was found, 1 when one is missing or its "
        "source is broken (the error is printed), 2 for an invalid name.",
    )
    _loader_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)
    import json

    from . import SecretError

    loader = _loader(args)
    status = 0
    for name in args.names:
        try:
            explanation = loader.explain(name)
        except SecretError as exc:
            print(f"agentos-secrets: {exc}", file=sys.stderr)
            status = 2
            continue
        if not explanation.found:
            status = max(status, 1)
        print(json.dumps(explanation.as_dict()) if args.json else str(explanation))
    return status


def _check(argv: Sequence[str]) -> int:
    from .check.cli import main as check_main

    return check_main(argv)


def _rotate(argv: Sequence[str]) -> int:
    from .rotate.cli import main as rotate_main

    return rotate_main(argv)


def _sidecar(argv: Sequence[str]) -> int:
    from .sidecar.main import main as sidecar_main

    return sidecar_main(argv)


_COMMANDS = {
    "check": (_check, "find what would break a deploy or its next rotation"),
    "fingerprint": (_fingerprint, "print a secret's safe fingerprint (compare across nodes)"),
    "explain": (_explain, "say where a secret comes from and what it shadows"),
    "sidecar": (_sidecar, "watch mounted Secrets and reload or restart the app on change"),
    "rotate": (_rotate, "rotate a key of a Kubernetes Secret, gated on every pod"),
}


def _usage() -> str:
    lines = [
        "usage: agentos-secrets COMMAND [ARGS...]",
        "",
        "The secrets layer of AgentOS.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in _COMMANDS.items()]
    lines += ["", "Run 'agentos-secrets COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from . import __version__

        print(f"agentos-secrets {__version__}")
        return 0
    command = _COMMANDS.get(args[0])
    if command is None:
        print(f"agentos-secrets: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return command[0](args[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
