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
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from .errors import InputError
from .locate import ObjectSource, Provenance
from .reading import (
    MAX_ENV_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    read_file,
    read_stdin,
    shown_argument,
)
from .shapes import describe

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


def load_env_file(path: str) -> dict[str, str]:
    """Parse a dotenv file with python-dotenv's parser (``export``, quotes, escapes,
    comments, a byte-order mark, multi-line quoted values), without interpolation.

    Errors name the file and line number; the line itself is never quoted.
    """
    return _parse_env_file(path)[0]


def _parse_env_file(path: str) -> tuple[dict[str, str], dict[str, int]]:
    """The variables of an env file and the line each was (last) set on.

    A bare ``KEY`` (no ``=``) sets nothing, as for python-dotenv's ``load_dotenv``.
    dotenv's ``Binding`` objects hold values: they never leave this function, and a
    parse failure is reported by line number only.
    """
    import io

    from dotenv.parser import parse_stream

    text = read_file(path, "--env-file", MAX_ENV_FILE_BYTES)
    where = f"--env-file {shown_argument(path)}"
    long_blanks = _LONG_BLANKS.search(text)
    if long_blanks is not None:
        # dotenv strips an inline comment with a regular expression that is quadratic in
        # a run of blanks (20,000 spaces: 1.7 s; a 1 MiB file of them: over an hour).
        number = text.count("\n", 0, long_blanks.start()) + 1
        raise InputError(f"{where} line {number}: a run of more than {MAX_BLANK_RUN} "
                         "spaces or tabs (refused: no env file needs one)")
    result: dict[str, str] = {}
    numbers: dict[str, int] = {}
    failure: str | None = None
    try:
        for binding in parse_stream(io.StringIO(text)):
            original = binding.original.string
            # The mark sits before the blank lines and indentation preceding the binding.
            skipped = original[: len(original) - len(original.lstrip())]
            number = binding.original.line + len(re.findall(r"\r\n|\n|\r", skipped))
            if binding.error:
                failure = f"line {number}: {_syntax_problem(original.strip())}"
                break
            if binding.key is None or binding.value is None:
                continue
            result[binding.key] = binding.value
            numbers[binding.key] = number
    except Exception:  # noqa: BLE001 - whatever dotenv raises, its text may hold a value
        failure = "cannot be parsed as a dotenv file"
    if failure is not None:
        raise InputError(f"{where} {failure}" if failure.startswith("line")
                         else f"{where}: {failure}")
    return result, numbers


#: The longest run of blanks (dotenv's ``[^\S\r\n]``) an env-file line may hold.
MAX_BLANK_RUN = 256
_LONG_BLANKS = re.compile(rf"[^\S\r\n]{{{MAX_BLANK_RUN + 1}}}")


def _syntax_problem(line: str) -> str:
    """What is wrong with a line dotenv refused, described without quoting it."""
    _key, sep, rest = line.partition("=")
    if sep and rest.lstrip()[:1] in ("'", '"'):
        return "unterminated quote (or text after the closing quote)"
    return "not a KEY=value line"


def load_environment(env_file: str | None, profile: str | None) -> Environment:
    """The environment to check: ``--env-file`` alone, or this process's environment.

    The profile is ``--profile`` when given, else the checked environment's
    ``AGENTOS_PROFILE``, as the service itself would decide.
    """
    numbers: dict[str, int] = {}
    if env_file is not None:
        variables, numbers = _parse_env_file(env_file)
        if not variables:
            raise InputError(
                f"--env-file {shown_argument(env_file)}: no variables (nothing to check)"
            )
        if not any(k.startswith("AGENTOS_") for k in variables):
            # As for this process's environment: the wrong file must not pass (exit 0).
            raise InputError(
                f"--env-file {shown_argument(env_file)}: no AGENTOS_* variable "
                "(nothing to check)"
            )
    else:
        variables = dict(os.environ)
    chosen = profile if profile is not None else variables.get("AGENTOS_PROFILE")
    return Environment(variables, env_file, normalize_profile(chosen), numbers)


# -- manifests -----------------------------------------------------------------------------


class K8sObject(NamedTuple):
    """One Kubernetes object of the stream, with a printable identity and where it is
    written (see :mod:`.locate`)."""

    body: Mapping[str, Any]
    #: The line of the object in a file input or stdin (None when rendered).
    line: int | None = None
    #: A YAML file's or stdin's object: the positions of its fields.
    source: ObjectSource | None = None
    #: A rendered object: what kustomize recorded about where it came from.
    provenance: Provenance | None = None

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


#: Objects of one input after ``kind: List`` is flattened; more is refused.
MAX_OBJECTS = 10_000


class Manifests:
    """The objects of one manifests input and the path (or ``-``) they came from.

    Lookups by kind, name and namespace go through an index built once, so that rules
    asking per container (ConfigMaps, Secrets, ServiceAccounts) stay linear in the input.
    """

    __slots__ = ("_index", "objects", "source")

    def __init__(self, source: str, objects: tuple[K8sObject, ...] = ()) -> None:
        self.source = source
        self.objects = tuple(objects)
        self._index: dict[tuple[str, str, str | None], K8sObject] | None = None

    def __repr__(self) -> str:
        return f"Manifests({self.source!r}, {len(self.objects)} objects)"

    def of_kind(self, *kinds: str) -> Iterator[K8sObject]:
        return (o for o in self.objects if o.kind in kinds)

    def find(self, kind: str, name: str, namespace: str | None) -> K8sObject | None:
        """The first object of ``kind`` named ``name`` in ``namespace`` (None: none)."""
        if self._index is None:
            index: dict[tuple[str, str, str | None], K8sObject] = {}
            for o in self.objects:
                index.setdefault((o.kind, o.name, o.namespace), o)
            self._index = index
        return self._index.get((kind, name, namespace))


def _flatten(
    doc: Any, where: str, line: int | None
) -> Iterator[tuple[K8sObject, tuple[int, ...]]]:
    """The objects of one document and the item indices that reach each (empty for the
    document itself); ``kind: List`` (and ``*List`` with items) flattened.

    Iterative: the nesting of lists is bounded by the YAML depth limit anyway.
    """
    pending: list[tuple[Any, tuple[int, ...]]] = [(doc, ())]
    while pending:
        item, indices = pending.pop()
        if item is None:
            continue
        at = f"{where}" + (f" (document at line {line})" if line else "")
        if not isinstance(item, Mapping):
            raise InputError(f"{at}: a document or List item is not a mapping "
                             "(a Kubernetes object)")
        kind = item.get("kind")
        if not isinstance(kind, str) or not kind:
            raise InputError(f"{at}: an object has no kind (or its kind is not a string)")
        if kind == "List" or (kind.endswith("List") and "items" in item):
            items = item.get("items")
            if items is None:
                continue
            if not isinstance(items, list):
                raise InputError(f"{at}: a {kind}'s items is {describe(items)}, "
                                 "expected a list")
            pending.extend((sub, (*indices, i)) for i, sub in reversed(list(enumerate(items))))
            continue
        yield K8sObject(item, line), indices


def _strip_provenance(body: Any, base: str) -> Provenance | None:
    """Take kustomize's provenance annotations off ``body`` (the rules must see the
    object as the user wrote it) and return what they said."""
    from .locate import BUILD_ANNOTATIONS, parse_provenance

    meta = body.get("metadata") if isinstance(body, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return None
    provenance = parse_provenance(annotations, base)
    for key in BUILD_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        del meta["annotations"]
    return provenance


def parse_yaml_stream(
    text: str, where: str, *, file: str | None = None, track_lines: bool = False,
    rendered_from: str | None = None,
) -> tuple[K8sObject, ...]:
    """Parse a multi-document YAML stream into objects (``kind: List`` is flattened).

    Bounded (see :mod:`.yamlsafe`), and every field a rule reads is type-checked here,
    once (see :mod:`.shapes`): a wrong type is an InputError naming object and field.
    ``track_lines`` keeps where each object and field is (a file the user edits, named
    by ``file``, or stdin); ``rendered_from`` is the directory a kustomize render's
    provenance paths are relative to (the annotations are read, then stripped).
    """
    from .shapes import check_object
    from .yamlsafe import load_documents, load_with_positions

    docs: list[tuple[Any, dict[Any, tuple[int, int]]]]
    if track_lines:
        docs = load_with_positions(text, where)
    else:
        docs = [(doc, {}) for doc in load_documents(text, where)]
    objects: list[K8sObject] = []
    for doc, positions in docs:
        start = positions.get(())
        line = start[0] if start else None
        for obj, indices in _flatten(doc, where, line):
            prefix = tuple(x for i in indices for x in ("items", i))
            if track_lines:
                at = positions.get(prefix)
                obj = obj._replace(line=at[0] if at else line,
                                   source=ObjectSource(file, positions, prefix))
            elif rendered_from is not None:
                obj = obj._replace(provenance=_strip_provenance(obj.body, rendered_from))
            objects.append(obj)
            if len(objects) > MAX_OBJECTS:
                raise InputError(f"{where}: more than {MAX_OBJECTS} Kubernetes objects")
    for obj in objects:
        check_object(obj.body, where, obj.line)
    return tuple(objects)


def load_manifests(
    spec: str, *, kubectl: str | None = None, stdin_text: str | None = None
) -> Manifests:
    """Load ``--manifests``: a kustomization directory, a YAML file, or ``-`` (stdin).

    Every form is bounded in size (:data:`~.reading.MAX_MANIFEST_BYTES`) and time.
    """
    if spec == "-":
        text = (read_stdin("--manifests", MAX_MANIFEST_BYTES) if stdin_text is None
                else stdin_text)
        where = "<stdin>"
        objects = parse_yaml_stream(text, where, track_lines=True)
    elif os.path.isdir(spec):
        if not any(
            os.path.isfile(os.path.join(spec, n))
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            raise InputError(f"--manifests {spec}: a directory without a kustomization.yaml")
        from .kustomize import KUBECTL_ENV, find_kubectl, render

        text, base = render(spec, find_kubectl(kubectl or os.environ.get(KUBECTL_ENV)))
        where = spec
        objects = parse_yaml_stream(text, where, rendered_from=base)
    else:
        text = read_file(spec, "--manifests", MAX_MANIFEST_BYTES)
        where = spec
        objects = parse_yaml_stream(text, where, file=os.path.abspath(spec),
                                    track_lines=True)
    if not objects:
        raise InputError(f"--manifests {where}: no Kubernetes objects (nothing to check)")
    return Manifests(where, objects)
