"""YAML with bounds: every stream ``check`` parses goes through :func:`load_documents`.

PyYAML's safe loader builds only plain data, but it is not bounded: aliases make a few
hundred bytes stand for an exponential number of nodes (a "billion laughs" of ``kind:
List`` items stalls every walker), deep nesting exhausts the recursion limit, and nothing
caps the number of documents. Each document is composed (libyaml refuses nesting beyond
1,000 levels itself; PyYAML's pure-Python composer hits the recursion limit first, which
is refused too) and its node graph checked before anything is constructed:

* nesting depth at most :data:`MAX_DEPTH`;
* at most :data:`MAX_DOCUMENTS` documents and :data:`MAX_ALIASES` aliases (references
  to a node already seen);
* anchors and aliases are allowed (hand-written manifests use ``<<: *defaults``), but the
  document *as expanded* may hold at most :data:`MAX_EXPANDED_NODES` nodes and
  :data:`MAX_EXPANDED_CHARS` characters of scalars, counted over the composed graph in
  linear time; an alias that contains itself is refused.

:func:`load_with_positions` also keeps where each field is: the line and column of every
mapping key and sequence item, taken from the composed node graph (each distinct node
once, so aliases cost nothing more), for reports that point at the line to change.

Each refusal is an :class:`~.errors.InputError` naming the input and the limit. Syntax
errors are rebuilt from position and problem only: PyYAML's message quotes the offending
line and its marks keep the whole buffer, which must not travel along as ``__context__``.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_EXPANDED_CHARS",
    "MAX_EXPANDED_NODES",
    "Positions",
    "load_documents",
    "load_with_positions",
]

#: A field's path in a document (mapping keys as strings, list indices as ints) -> its
#: 1-based (line, column): of the key for a mapping entry, of the item for a list item.
Positions = dict[tuple[str | int, ...], tuple[int, int]]

MAX_DEPTH = 64
MAX_DOCUMENTS = 10_000
MAX_ALIASES = 10_000
MAX_EXPANDED_NODES = 1_000_000
MAX_EXPANDED_CHARS = 64 << 20


def _loader_class() -> Any:
    import yaml

    # libyaml's loader when pyyaml was built with it (about 5x faster), same safe subset.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_documents(text: str, where: str) -> list[Any]:
    """The documents of ``text``, each plain data; an InputError naming ``where``."""
    return [doc for doc, _ in _load(text, where, positions=False)]


def load_with_positions(text: str, where: str) -> list[tuple[Any, Positions]]:
    """As :func:`load_documents`, each document with the positions of its fields."""
    return _load(text, where, positions=True)


def _load(text: str, where: str, *, positions: bool) -> list[tuple[Any, Positions]]:
    import yaml

    failure: str | None = None
    try:
        docs = _compose_and_construct(text, where, positions)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        failure = f"{pos}: {_problem(exc.problem or exc.context or 'syntax error')}"
    except yaml.YAMLError as exc:
        failure = f" ({type(exc).__name__})"
    except RecursionError:
        failure = ": nested too deeply"
    if failure is not None:
        raise InputError(f"{where}: invalid YAML{failure}")
    return docs


def _problem(text: str) -> str:
    """PyYAML's problem text without what it quotes from the input (tags, anchors,
    characters), keeping its token names such as ``'<block end>'``."""
    return re.sub(r"'(?!<[a-z ]+>')[^']*'", "'…'", str(text))[:200]


def _compose_and_construct(
    text: str, where: str, positions: bool
) -> list[tuple[Any, Positions]]:
    loader = _loader_class()(text)
    budget = _Budget(where)
    try:
        docs: list[tuple[Any, Positions]] = []
        while loader.check_node():
            node = loader.get_node()
            budget.documents += 1
            if budget.documents > MAX_DOCUMENTS:
                raise InputError(f"{where}: more than {MAX_DOCUMENTS} YAML documents")
            budget.spend(node)
            marks = _positions(node) if positions else {}
            docs.append((loader.construct_document(node), marks))
        return docs
    finally:
        loader.dispose()


def _positions(root: Any) -> Positions:
    """Where each field of a composed (and already budgeted) document is.

    Each distinct node is walked once: a field reached only through an alias keeps the
    position of its anchor's first path, and merge keys (``<<``) are not followed, so
    the walk is linear in the composed graph. Only marks (line, column) are kept, never
    the buffer they point into.
    """
    import yaml

    found: Positions = {(): (root.start_mark.line + 1, root.start_mark.column + 1)}
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                    continue
                sub = (*path, key.value)
                found.setdefault(sub, (key.start_mark.line + 1, key.start_mark.column + 1))
                stack.append((value, sub))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                sub = (*path, index)
                found.setdefault(sub, (item.start_mark.line + 1, item.start_mark.column + 1))
                stack.append((item, sub))
    return found


class _Budget:
    """The expanded size of the documents, counted once per distinct node (memoised),
    so that counting is linear in the composed graph while the total it reports is what
    a full expansion of every alias would visit."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.nodes = 0
        self.chars = 0
        self.documents = 0
        self.aliases = 0

    def spend(self, root: Any) -> None:
        import yaml

        sizes: dict[int, tuple[int, int]] = {}
        active: set[int] = set()
        references = 0
        stack: list[tuple[Any, bool, int]] = [(root, False, 1)]
        while stack:
            node, children_done, depth = stack.pop()
            key = id(node)
            if children_done:
                active.discard(key)
                nodes, chars = 1, 0
                for child in _children(node):
                    child_nodes, child_chars = sizes[id(child)]
                    nodes += child_nodes
                    chars += child_chars
                    if nodes > MAX_EXPANDED_NODES or chars > MAX_EXPANDED_CHARS:
                        self._refuse()
                sizes[key] = (nodes, chars)
                continue
            if key in sizes:
                continue
            if isinstance(node, yaml.ScalarNode):
                sizes[key] = (1, len(node.value))
                continue
            if key in active:
                raise InputError(f"{self.where}: a YAML alias refers to a node containing it")
            if depth > MAX_DEPTH:
                raise InputError(f"{self.where}: YAML nested deeper than {MAX_DEPTH} levels")
            active.add(key)
            stack.append((node, True, depth))
            children = _children(node)
            references += len(children)
            stack.extend((child, False, depth + 1) for child in children
                         if id(child) not in sizes)
        # Every node but the root is referenced once without aliases; the rest are aliases.
        self.aliases += references - (len(sizes) - 1)
        if self.aliases > MAX_ALIASES:
            raise InputError(f"{self.where}: more than {MAX_ALIASES} YAML aliases")
        nodes, chars = sizes[id(root)]
        self.nodes += nodes
        self.chars += chars
        if self.nodes > MAX_EXPANDED_NODES or self.chars > MAX_EXPANDED_CHARS:
            self._refuse()

    def _refuse(self) -> None:
        raise InputError(
            f"{self.where}: YAML aliases expand beyond {MAX_EXPANDED_NODES} nodes or "
            f"{MAX_EXPANDED_CHARS} characters (refused: an alias bomb or a far too large "
            "input)"
        )


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
