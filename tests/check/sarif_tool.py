"""Microsoft's SARIF Multitool, the validator GitHub points to, installed for the tests.

From the npm registry (``@microsoft/sarif-multitool-linux``, a self-contained binary)
into ``.tools/sarif`` of the repository (git-ignored), once: a second call finds it and
does nothing. Nothing but the npm registry is contacted. ``python3
tests/check/sarif_tool.py`` installs it (``.ci/run`` does, before the tests); the tests
call :func:`ensure` and skip with its reason when it cannot be had.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "@microsoft/sarif-multitool-linux"
VERSION = "5.7.0"
ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".tools" / "sarif"
BINARY = PREFIX / "node_modules" / "@microsoft" / "sarif-multitool-linux" / "Sarif.Multitool"


def ensure() -> tuple[Path | None, str]:
    """The Multitool's path, installing it when missing; else None and why not."""
    if BINARY.is_file():
        return _executable(), "installed"
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"the npm package {PACKAGE} is for linux x64 only"
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed"
    PREFIX.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund",
             "--no-save", f"{PACKAGE}@{VERSION}"],
            capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"npm install {PACKAGE} failed ({type(exc).__name__})"
    if done.returncode != 0 or not BINARY.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return None, f"npm install {PACKAGE} failed: {last}"
    return _executable(), "installed now"


def _executable() -> Path:
    # The package's postinstall (chmod u+x) may not run (npm's install-script policy).
    mode = BINARY.stat().st_mode
    if not mode & 0o100:
        os.chmod(BINARY, mode | 0o100)
    return BINARY


if __name__ == "__main__":
    path, why = ensure()
    print(f"SARIF Multitool: {path or 'not available'} ({why})")
    sys.exit(0 if path else 1)
