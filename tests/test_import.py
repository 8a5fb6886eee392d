"""``import agentos_secrets`` stays cheap: heavy dependencies load only where used.

A correctness test, not a timing: it checks *which* modules a fresh interpreter has after
the import. The time itself is measured in benchmarks/bench_import.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "watchdog",
    "httpx",
    "cryptography",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "yaml",
    "kubernetes",
    "urllib3",
)
# Standard-library modules that cost milliseconds each and that the package avoids at
# import time (dataclasses pulls inspect; logging pulls traceback, string, threading).
AVOIDED_STDLIB = ("dataclasses", "inspect", "logging", "typing", "threading", "hashlib", "hmac")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout
    return set(json.loads(out))


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return _modules_after("pass")


@pytest.fixture(scope="module")
def after_import() -> set[str]:
    return _modules_after("import agentos_secrets")


def _top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_no_heavy_dependency_is_imported(after_import: set[str]) -> None:
    loaded = _top_level(after_import) & set(HEAVY)
    assert not loaded, f"import agentos_secrets imported {sorted(loaded)}"


def test_no_costly_stdlib_module_is_imported(baseline: set[str], after_import: set[str]) -> None:
    added = (after_import - baseline) & set(AVOIDED_STDLIB)
    assert not added, f"import agentos_secrets imported {sorted(added)}"


def test_the_public_surface_is_importable_and_still_lazy() -> None:
    code = "from agentos_secrets import Loader, Secret, SecretError, Explanation"
    assert not (_top_level(_modules_after(code)) & set(HEAVY))

