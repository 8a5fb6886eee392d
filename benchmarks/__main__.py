"""Run the benchmarks: ``python -m benchmarks [--list] [TOPIC ...]``.

Discovers ``benchmarks/bench_*.py`` by file name (a new benchmark needs no registration),
runs each ``main()`` in name order, and keeps going when one fails so that a single broken
benchmark does not hide the others' figures; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """The topics available, in run order (``bench_loader.py`` -> ``loader``)."""
    return sorted(p.stem.removeprefix("bench_") for p in _HERE.glob("bench_*.py"))


def run(topic: str) -> bool:
    """Import ``benchmarks.bench_<topic>`` and call its ``main()``; False on failure."""
    started = time.perf_counter()
    print(f"=== bench_{topic} ===", flush=True)
    try:
        module = importlib.import_module(f"benchmarks.bench_{topic}")
        module.main()
    except KeyboardInterrupt:
        raise
    except BaseException:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        print(f"--- bench_{topic}: FAILED after {time.perf_counter() - started:.1f} s\n")
        return False
    print(f"--- bench_{topic}: {time.perf_counter() - started:.1f} s\n", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run every benchmarks/bench_*.py in name order, or only the named ones.",
    )
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="e.g. loader, import")
    parser.add_argument("--list", action="store_true", help="list the topics and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    wanted = [t.removeprefix("bench_").removesuffix(".py") for t in args.topics] or available
    unknown = [t for t in wanted if t not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    failed = [t for t in wanted if not run(t)]
    if failed:
        print(f"failed: {', '.join(f'bench_{t}' for t in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
