"""Import cost: ``python -c "import agentos_secrets"`` against ``python -c pass``.

Target (issue 2): at most 20 ms over a bare interpreter; pydantic-settings alone adds
about 180 ms, shown for scale. Each figure is the median wall time of fresh interpreter
processes, run interleaved (pass, import, pass, import, ...) so that load on a shared
machine hits both sides alike. The ``.pyc`` files are warmed first: the figure is what
every start of a service pays, not the one-off compile.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "21"))
TARGET_MS = 20.0
HEAVY = ("watchdog", "httpx", "cryptography", "pydantic", "prometheus_client", "yaml")

_CASES = {
    "bare interpreter": "pass",
    "import agentos_secrets": "import agentos_secrets",
    "import pydantic_settings": "import pydantic_settings",
}


def _wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def _heavy_loaded() -> list[str]:
    probe = (
        "import sys, agentos_secrets; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


def main() -> None:
    for code in _CASES.values():  # warm the .pyc caches
        _wall(code)
    samples: dict[str, list[float]] = {label: [] for label in _CASES}
    for _ in range(RUNS):
        for label, code in _CASES.items():
            samples[label].append(_wall(code))
    median = {label: statistics.median(s) * 1000 for label, s in samples.items()}
    bare = median["bare interpreter"]
    ours = median["import agentos_secrets"] - bare
    pyd = median["import pydantic_settings"] - bare
    print(f"Import cost (median wall time of {RUNS} fresh processes each, interleaved)")
    for label, ms in median.items():
        print(f"  {label:<26} {ms:7.1f} ms")
    print(f"  agentos_secrets adds      {ours:7.1f} ms  (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if ours <= TARGET_MS else 'MISSED'})")
    ratio = f"  ({pyd / ours:.0f}x agentos_secrets' cost)" if ours > 0 else ""
    print(f"  pydantic_settings adds    {pyd:7.1f} ms{ratio}")
    heavy = _heavy_loaded()
    print(f"  heavy modules loaded by the import: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
