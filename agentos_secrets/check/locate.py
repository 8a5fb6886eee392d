"""Where to point a finding: the file a human edits, and the line and column of the field.

A finding names an object (``Kind/namespace/name``) and a field path written for people
(``spec.template.spec.containers[app].volumeMounts[secrets].subPath``: list items by
their ``name``, or by index). :func:`field_path` turns it back into a path through the
object's data, as deep as the object has it (a missing field points at its parent).

* A YAML file or stdin: the position of that path in the composed YAML
  (:func:`~.yamlsafe.load_with_positions`).
* A kustomization: kustomize itself records where each object came from when asked
  (``buildMetadata: [originAnnotations, transformerAnnotations]``, see
  :mod:`.kustomize`): the resource file (``config.kubernetes.io/origin``), the generator's
  kustomization, and each kustomization whose patches ran over the object
  (``alpha.config.kubernetes.io/transformations``). A patch of those kustomizations
  that targets the object and sets the field wins (the last one applied); then the
  field in the resource file; then the object in it. Kustomize records the
  kustomization of a patch, not the patch file, so the patches it declares are read
  (bounded, like every input) and matched structurally: a JSON patch by its operations'
  paths, a strategic-merge patch by the field's presence in it. Nothing is found by
  searching text.

Paths are shown relative to the root (``--root``, default the working directory), with
``/`` separators, so that they match the repository.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .errors import InputError
from .yamlsafe import Positions

__all__ = ["ObjectSource", "Provenance", "Spot", "field_path", "locate", "shown_file"]

Path = tuple[str | int, ...]


class ObjectSource(NamedTuple):
    """Where an object of a YAML file or stdin is: the file (None: stdin), the
    positions of its document's fields, and the object's path inside the document
    (non-empty for an item of a ``kind: List``)."""

    file: str | None
    positions: Positions
    prefix: Path = ()


class Provenance(NamedTuple):
    """What kustomize recorded about a rendered object (absolute paths)."""

    #: The resource file the object was read from (None for a generated object).
    origin: str | None
    #: The kustomization whose generator made it (None for a resource).
    configured_in: str | None
    #: The kustomizations whose patches ran over it, in the order they were applied.
    patched_in: tuple[str, ...]


class Spot(NamedTuple):
    """A file (absolute; None for stdin) and a 1-based line and column, when known."""

    file: str | None
    line: int | None
    column: int | None


_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _tokens(field: str) -> list[tuple[str, bool]]:
    """``a.b[x].c`` -> [(a, False), (b, False), (x, True), (c, False)]."""
    return [(m.group(1), False) if m.group(1) is not None else (m.group(2), True)
            for m in _TOKEN.finditer(field)]


def field_path(body: Any, field: str | None) -> tuple[Path, bool]:
    """The data path ``field`` names in ``body``, as deep as ``body`` has it, and
    whether all of it was found. A bracketed label picks the list item with that
    ``name`` (else that index), or the mapping key."""
    path, rest = _walk(body, field)
    return path, not rest


def _intended(body: Any, field: str | None) -> Path:
    """The path ``field`` would have in ``body``: what exists, then the missing
    labels (what a JSON patch's ``remove`` of that field would have named)."""
    path, rest = _walk(body, field)
    return (*path, *(int(label) if label.isdigit() else label for label, _ in rest))


def _walk(body: Any, field: str | None) -> tuple[Path, list[tuple[str, bool]]]:
    path: list[str | int] = []
    node = body
    tokens = _tokens(field or "")
    for at, (label, bracketed) in enumerate(tokens):
        if isinstance(node, Mapping) and label in node:
            path.append(label)
            node = node[label]
        elif isinstance(node, list) and bracketed:
            index = next((i for i, item in enumerate(node)
                          if isinstance(item, Mapping) and item.get("name") == label), None)
            if index is None and label.isdigit() and int(label) < len(node):
                index = int(label)
            if index is None:
                return tuple(path), tokens[at:]
            path.append(index)
            node = node[index]
        else:
            return tuple(path), tokens[at:]
    return tuple(path), []


def _deepest(positions: Positions, path: Path) -> tuple[int, int] | None:
    for end in range(len(path), -1, -1):
        found = positions.get(path[:end])
        if found is not None:
            return found
    return None


class _Files:
    """The YAML files a kustomization's provenance names, each read once, bounded."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[list[tuple[Any, Positions]], list[str]] | None] = {}

    def get(self, path: str) -> tuple[list[tuple[Any, Positions]], list[str]] | None:
        if path not in self._cache:
            self._cache[path] = self._load(path)
        return self._cache[path]

    @staticmethod
    def _load(path: str) -> tuple[list[tuple[Any, Positions]], list[str]] | None:
        from .reading import MAX_MANIFEST_BYTES, read_file
        from .yamlsafe import load_with_positions

        try:
            text = read_file(path, "--manifests", MAX_MANIFEST_BYTES)
            return load_with_positions(text, path), text.splitlines()
        except InputError:
            return None  # kustomize read it; if we cannot, the object's kustomization stays


def _same_object(doc: Any, kind: str, name: str) -> bool:
    """Whether ``doc`` is the source of the rendered ``kind``/``name`` (kustomize may
    have added a name prefix, suffix or hash)."""
    if not isinstance(doc, Mapping) or doc.get("kind") != kind:
        return False
    meta = doc.get("metadata")
    own = meta.get("name") if isinstance(meta, Mapping) else None
    return isinstance(own, str) and bool(own) and own in name


def _kustomization_file(directory: str) -> str | None:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _pointer(text: object) -> Path | None:
    """A JSON pointer (``/spec/x/0``) as a data path; None when it is not one."""
    if not isinstance(text, str) or not text.startswith("/"):
        return None
    parts: list[str | int] = []
    for raw in text[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


def _targets(entry: Mapping[str, Any], kind: str, name: str) -> bool | None:
    """Whether a patch entry's ``target`` selects the object (None: no target)."""
    target = entry.get("target")
    if not isinstance(target, Mapping):
        return None
    want_kind, want_name = target.get("kind"), target.get("name")
    if isinstance(want_kind, str) and want_kind and want_kind != kind:
        return False
    if isinstance(want_name, str) and want_name:
        # kustomize reads the name as an RE2 pattern (linear time); Python's backtracking
        # engine must not run a pattern from the input, so a pattern selects every name.
        if re.search(r"[\\^$.|?*+()\[\]{}]", want_name):
            return True
        return want_name in name
    return True


class _Patch(NamedTuple):
    docs: list[tuple[Any, Positions]]
    #: The file the positions are in, and the line/column offset of an inline patch.
    file: str
    base: tuple[int, int] | None
    lines: list[str]


def _patches(kustomization: str, files: _Files, kind: str,
             name: str) -> list[_Patch]:
    """The patches ``kustomization`` declares that apply to the object, in order."""
    from .yamlsafe import load_with_positions

    loaded = files.get(kustomization)
    if loaded is None or len(loaded[0]) != 1 or not isinstance(loaded[0][0][0], Mapping):
        return []
    (doc, positions), lines = loaded[0][0], loaded[1]
    directory = os.path.dirname(kustomization)
    entries: list[tuple[str, int, Any]] = []
    for key in ("patches", "patchesStrategicMerge", "patchesJson6902"):
        items = doc.get(key)
        if isinstance(items, list):
            entries += [(key, i, item) for i, item in enumerate(items)]
    found: list[_Patch] = []
    for key, index, entry in entries:
        if isinstance(entry, str):  # patchesStrategicMerge: a path (or inline YAML)
            entry = {"path": entry} if "\n" not in entry else {"patch": entry}
        if not isinstance(entry, Mapping):
            continue
        selected = _targets(entry, kind, name)
        if selected is False:
            continue
        path, inline = entry.get("path"), entry.get("patch")
        if isinstance(path, str) and path:
            target = os.path.normpath(os.path.join(directory, path))
            patch = files.get(target)
            if patch is not None:
                found.append(_Patch(patch[0], target, None, patch[1]))
        elif isinstance(inline, str) and inline:
            where = positions.get((key, index, "patch"))
            try:
                docs = load_with_positions(inline, kustomization)
            except InputError:
                continue
            found.append(_Patch(docs, kustomization, where, lines))
        else:
            continue
        if selected is None:  # no target: a strategic-merge patch names its object
            found[-1] = found[-1]._replace(docs=[
                d for d in found[-1].docs if _same_object(d[0], kind, name)])
    return found


def _in_patch(patch: _Patch, rendered: Path, complete: bool, intended: Path,
              field: str | None) -> tuple[int, int] | None:
    """Where ``patch`` sets the field: a JSON-patch operation on the field, inside it
    (when the object has the field) or on what holds it, or one that removed it; or
    the field in a strategic-merge patch."""
    for doc, positions in reversed(patch.docs):
        if isinstance(doc, list):  # JSON 6902 operations
            for i in range(len(doc) - 1, -1, -1):
                op = doc[i]
                target = _pointer(op.get("path")) if isinstance(op, Mapping) else None
                if target is None or not target or op.get("op") == "test":
                    continue
                if target[-1] == "-" and len(target) <= len(intended):
                    target = (*target[:-1], intended[len(target) - 1])  # appended
                on_or_above = intended[:len(target)] == target
                inside = complete and rendered and target[:len(rendered)] == rendered
                if on_or_above or inside:
                    return positions.get((i,)) or positions.get(())
        elif isinstance(doc, Mapping):
            path, complete = field_path(doc, field)
            if complete and path:
                return positions.get(path)
    return None


def _absolute(patch: _Patch, spot: tuple[int, int]) -> tuple[int, int]:
    """A position inside a patch as a position in its file (an inline patch is a block
    scalar under its ``patch:`` key: its lines start on the next line)."""
    if patch.base is None:
        return spot
    first = patch.base[0] + 1  # the block's first line sets its indentation
    text = patch.lines[first - 1] if 0 < first <= len(patch.lines) else ""
    return patch.base[0] + spot[0], len(text) - len(text.lstrip(" ")) + spot[1]


def _locate_rendered(body: Mapping[str, Any], field: str | None, kind: str, name: str,
                     provenance: Provenance, files: _Files) -> Spot:
    rendered, complete = field_path(body, field)
    intended = _intended(body, field)
    for kustomization in reversed(provenance.patched_in):
        for patch in reversed(_patches(kustomization, files, kind, name)):
            spot = _in_patch(patch, rendered, complete, intended, field)
            if spot is not None:
                line, column = _absolute(patch, spot)
                return Spot(patch.file, line, column)
    if provenance.origin is not None:
        loaded = files.get(provenance.origin)
        if loaded is not None:
            for doc, positions in loaded[0]:
                if _same_object(doc, kind, name):
                    path, _ = field_path(doc, field)
                    spot = _deepest(positions, path)
                    return Spot(provenance.origin, *(spot or (None, None)))
        return Spot(provenance.origin, None, None)
    if provenance.configured_in is not None:
        return _generator_spot(provenance.configured_in, files, kind, name)
    return Spot(None, None, None)


def _generator_spot(kustomization: str, files: _Files, kind: str, name: str) -> Spot:
    """The generator entry that made a ConfigMap or Secret, in its kustomization."""
    loaded = files.get(kustomization)
    key = {"Secret": "secretGenerator", "ConfigMap": "configMapGenerator"}.get(kind)
    if loaded and len(loaded[0]) == 1 and key and isinstance(loaded[0][0][0], Mapping):
        doc, positions = loaded[0][0]
        for i, entry in enumerate(doc.get(key) or []):
            if isinstance(entry, Mapping) and str(entry.get("name") or "\0") in name:
                spot = positions.get((key, i))
                return Spot(kustomization, *(spot or (None, None)))
    return Spot(kustomization, None, None)


def locate(obj: Any, field: str | None, files: _Files | None = None) -> Spot:
    """Where the field of ``obj`` (a :class:`~.inputs.K8sObject`) is to be changed."""
    files = files or _Files()
    source: ObjectSource | None = obj.source
    if source is not None:
        path, _ = field_path(obj.body, field)
        spot = _deepest(source.positions, (*source.prefix, *path))
        return Spot(source.file, *(spot or (None, None)))
    if obj.provenance is not None:
        return _locate_rendered(obj.body, field, obj.kind, obj.name, obj.provenance, files)
    return Spot(None, None, None)


def new_cache() -> _Files:
    """A cache of the files read while locating the findings of one run."""
    return _Files()


def shown_file(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators (as a repository names it)."""
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    return relative.replace(os.sep, "/")


def parse_provenance(annotations: Mapping[str, Any], base: str) -> Provenance | None:
    """The provenance kustomize wrote in ``annotations``, its paths made absolute
    against ``base`` (the directory of the kustomization that was built)."""
    from .yamlsafe import load_documents

    def load(key: str) -> Any:
        raw = annotations.get(key)
        if not isinstance(raw, str):
            return None
        try:
            docs = load_documents(raw, f"annotation {key}")
        except InputError:
            return None
        return docs[0] if len(docs) == 1 else None

    def absolute(value: object) -> str | None:
        if not isinstance(value, str) or not value or "://" in value:
            return None
        return os.path.normpath(os.path.join(base, value))

    origin = load(ORIGIN_ANNOTATION)
    transformations = load(TRANSFORMATIONS_ANNOTATION)
    if origin is None and transformations is None:
        return None
    origin = origin if isinstance(origin, Mapping) else {}
    patched: list[str] = []
    for step in transformations if isinstance(transformations, Sequence) else []:
        by = step.get("configuredBy") if isinstance(step, Mapping) else None
        kind = by.get("kind") if isinstance(by, Mapping) else None
        where = absolute(step.get("configuredIn")) if isinstance(step, Mapping) else None
        if isinstance(kind, str) and kind.startswith("Patch") and where is not None:
            if not patched or patched[-1] != where:
                patched.append(where)
    return Provenance(absolute(origin.get("path")), absolute(origin.get("configuredIn")),
                      tuple(patched))


ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
TRANSFORMATIONS_ANNOTATION = "alpha.config.kubernetes.io/transformations"
#: What ``check`` asks kustomize to record, and strips before the rules see the objects.
BUILD_ANNOTATIONS = (ORIGIN_ANNOTATION, TRANSFORMATIONS_ANNOTATION)


def kustomization_of(directory: str) -> str | None:
    """The kustomization file of ``directory`` (None when it has none)."""
    return _kustomization_file(directory)
