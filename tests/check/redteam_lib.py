"""Shared pieces of the red-team tests: the good variant as plain objects, manifests
written from objects, and ``check`` run as a real process with a time bound."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from check_lib import MANIFEST_VARIANTS

from agentos_secrets.check import kustomize

#: A bound on a whole run of ``check`` in a subprocess (not a timing assertion: the old
#: code never finished these at all).
#: (CHECK_REDTEAM_BOUND shortens it to replay the tests against the old code quickly.)
RUN_BOUND = float(os.environ.get("CHECK_REDTEAM_BOUND", "90"))


@functools.lru_cache(maxsize=1)
def _good_docs_text() -> str:
    kubectl = kustomize.find_kubectl()
    return subprocess.run([kubectl, "kustomize", str(MANIFEST_VARIANTS / "good")],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def good_docs() -> list[dict[str, Any]]:
    """The good variant, rendered, as a fresh list of plain objects."""
    return copy.deepcopy(list(yaml.safe_load_all(_good_docs_text())))


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment")


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = deployment(docs)["spec"]["template"]["spec"]
    return next(c for c in pod.get("initContainers", []) + pod["containers"]
                if c["name"] == name)


def set_env(c: dict[str, Any], name: str, value: Any) -> None:
    for var in c.setdefault("env", []):
        if var["name"] == name:
            var.pop("valueFrom", None)
            var["value"] = value
            return
    c["env"].append({"name": name, "value": value})


def write(tmp_path: Path, docs: list[Any], name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def run_process(argv: list[str], *, stdin: Any = subprocess.DEVNULL,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``agentos-secrets check ARGV`` as a real process, bounded by RUN_BOUND."""
    return subprocess.run(
        [sys.executable, "-m", "agentos_secrets", "check", *argv],
        stdin=stdin, capture_output=True, text=True, timeout=RUN_BOUND,
        env={**os.environ, **(env or {})},
    )
