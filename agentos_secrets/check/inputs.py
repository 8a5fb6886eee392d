"""Gather what ``check`` looks at: an environment and a stream of Kubernetes objects.

Anything that makes the inputs unusable (an unreadable env file, a kustomization that
does not render (see :mod:`.kustomize`), invalid YAML, no kubectl) raises
:class:`InputError`, which the CLI turns into exit code 2: "could not evaluate" must
never look like "nothing wrong".
Messages name files, lines and variables, never a value: a YAML error is rebuilt from
its position and problem instead of pyyaml's message, which quotes the offending line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

__all__ = [
    "Environment",
    "InputError",
    "K8sObject",
    "Manifests",
    "load_env_file",
    "load_environment",
    "load_manifests",
    "normalize_profile",
    "parse_yaml_stream",
]

_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)\Z")


class InputError(Exception):
    """The inputs cannot be evaluated (exit code 2)."""


def normalize_profile(value: str | None) -> str:
    """The platform's rule: trimmed and lower-cased; ``prod`` is prod, all else dev.

    ``demo`` is recognised by the platform but has none of prod's guards, so for the
    purposes of ``check`` it behaves as dev.
    """
    return "prod" if (value or "").strip().lower() == "prod" else "dev"


class Environment(NamedTuple):
    """The variables checked, where they came from (``None``: this process)."""

    variables: Mapping[str, str]
    source: str | None
    profile: str
    #: The line of each variable in the env file (empty for this process's environment),
    #: so that reports can point at the line to edit.
    lines: Mapping[str, int] = {}

    def has_agentos(self) -> bool:
        """True when any AgentOS variable is set: otherwise there is nothing to check."""
        return any(k.startswith("AGENTOS_") for k in self.variables)


def _unquote(raw: str, where: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if value[:1] in ("'", '"'):
        raise InputError(f"{where}: unterminated quote")
    # An unquoted value ends at an inline comment introduced by " #".
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def _read_text(path: str, option: str) -> str:
    """The UTF-8 text of an input file; an InputError naming the option and path.

    Raised outside the ``except`` blocks: a UnicodeDecodeError holds the whole content
    (``.object``), secrets included, and must not travel along as ``__context__``.
    """
    failure: str
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        failure = "no such file or directory"
    except OSError as exc:
        failure = f"cannot read ({exc.strerror})"
    except UnicodeDecodeError:
        failure = "is not UTF-8"
    raise InputError(f"{option} {path}: {failure}")


def load_env_file(path: str) -> dict[str, str]:
    """Parse a dotenv-style file: ``KEY=value`` lines, ``export``, quotes, ``#`` comments.

    Errors name the file and line number; the line itself is never quoted.
    """
    return _parse_env_file(path)[0]


def _parse_env_file(path: str) -> tuple[dict[str, str], dict[str, int]]:
    """The variables of an env file and the line each was (last) set on."""
    text = _read_text(path, "--env-file")
    lines = text.splitlines()
    result: dict[str, str] = {}
    numbers: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _ENV_LINE.match(text)
        where = f"--env-file {path} line {number}"
        if match is None:
            raise InputError(f"{where}: not a KEY=value line")
        result[match.group(1)] = _unquote(match.group(2), where)
        numbers[match.group(1)] = number
    return result, numbers


def load_environment(env_file: str | None, profile: str | None) -> Environment:
    """The environment to check: ``--env-file`` alone, or this process's environment.

    The profile is ``--profile`` when given, else the checked environment's
    ``AGENTOS_PROFILE``, as the service itself would decide.
    """
    numbers: dict[str, int] = {}
    if env_file is not None:
        variables, numbers = _parse_env_file(env_file)
        if not variables:
            raise InputError(f"--env-file {env_file}: no variables (nothing to check)")
        if not any(k.startswith("AGENTOS_") for k in variables):
            # As for this process's environment: the wrong file must not pass (exit 0).
            raise InputError(
                f"--env-file {env_file}: no AGENTOS_* variable (nothing to check)"
            )
    else:
        variables = dict(os.environ)
    chosen = profile if profile is not None else variables.get("AGENTOS_PROFILE")
    return Environment(variables, env_file, normalize_profile(chosen), numbers)


# -- manifests -----------------------------------------------------------------------------


class K8sObject(NamedTuple):
    """One Kubernetes object of the stream, with a printable identity."""

    body: Mapping[str, Any]
    #: The first line of its YAML document in a file input (None when rendered).
    line: int | None = None

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None

    @property
    def annotations(self) -> Mapping[str, Any]:
        ann = self.metadata.get("annotations")
        return ann if isinstance(ann, Mapping) else {}

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (or ``Kind/name`` without a namespace)."""
        parts = [self.kind or "?"]
        if self.namespace:
            parts.append(self.namespace)
        parts.append(self.name or "?")
        return "/".join(parts)


class Manifests(NamedTuple):
    """The objects of one manifests input and the path (or ``-``) they came from."""

    source: str
    objects: tuple[K8sObject, ...] = ()

    def of_kind(self, *kinds: str) -> Iterator[K8sObject]:
        return (o for o in self.objects if o.kind in kinds)


def _flatten(doc: Any, where: str, line: int | None) -> Iterator[K8sObject]:
    if doc is None:
        return
    if not isinstance(doc, Mapping):
        raise InputError(f"{where}: a document is not a mapping (a Kubernetes object)")
    if doc.get("kind") == "List" or (
        isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") and "items" in doc
    ):
        for item in doc.get("items") or ():
            yield from _flatten(item, where, line)
        return
    if not isinstance(doc.get("kind"), str) or not doc.get("kind"):
        raise InputError(f"{where}: an object has no kind")
    yield K8sObject(doc, line)


def _document_lines(text: str) -> list[int]:
    """The first line of each YAML document, found by its ``---`` separators.

    Good enough to point a reader (or a code-scanning UI) at the object; when directives
    or ``...`` end markers make the count differ from the parser's, lines are dropped.
    """
    starts: list[int] = []
    lines = text.splitlines()
    first_separator = next(
        (i for i, ln in enumerate(lines) if re.match(r"---(\s|$)", ln)), len(lines)
    )
    if first_separator == len(lines) or any(
        ln.strip() and not ln.lstrip().startswith("#") for ln in lines[:first_separator]
    ):
        starts.append(1)
    starts += [i + 2 for i, ln in enumerate(lines) if re.match(r"---(\s|$)", ln)]
    return starts


def parse_yaml_stream(
    text: str, where: str, *, track_lines: bool = False
) -> tuple[K8sObject, ...]:
    """Parse a multi-document YAML stream into objects (``kind: List`` is flattened).

    ``track_lines`` records each object's first line (for a file the user edits).
    """
    import yaml

    # libyaml's loader when pyyaml was built with it (about 5x faster), same safe subset.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    failure: str | None = None
    try:
        docs = list(yaml.load_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        failure = f"{pos}: {exc.problem or exc.context or 'syntax error'}"
    except yaml.YAMLError as exc:
        failure = f" ({type(exc).__name__})"
    if failure is not None:
        # Raised outside the except block: pyyaml's error (its mark's buffer) holds the
        # text, Secret values included, and must not travel along as __context__.
        raise InputError(f"{where}: invalid YAML{failure}")
    starts: list[int | None] = list(_document_lines(text)) if track_lines else []
    if len(starts) != len(docs):
        starts = [None] * len(docs)
    objects: list[K8sObject] = []
    for doc, line in zip(docs, starts, strict=True):
        objects.extend(_flatten(doc, where, line))
    return tuple(objects)


def load_manifests(
    spec: str, *, kubectl: str | None = None, stdin_text: str | None = None
) -> Manifests:
    """Load ``--manifests``: a kustomization directory, a YAML file, or ``-`` (stdin)."""
    if spec == "-":
        text = sys.stdin.read() if stdin_text is None else stdin_text
        where = "<stdin>"
    elif os.path.isdir(spec):
        if not any(
            os.path.isfile(os.path.join(spec, n))
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            raise InputError(f"--manifests {spec}: a directory without a kustomization.yaml")
        from .kustomize import KUBECTL_ENV, find_kubectl, render

        text = render(spec, find_kubectl(kubectl or os.environ.get(KUBECTL_ENV)))
        where = spec
    else:
        text = _read_text(spec, "--manifests")
        where = spec
    is_file = spec != "-" and not os.path.isdir(spec)
    objects = parse_yaml_stream(text, where, track_lines=is_file)
    if not objects:
        raise InputError(f"--manifests {where}: no Kubernetes objects (nothing to check)")
    return Manifests(where, objects)
