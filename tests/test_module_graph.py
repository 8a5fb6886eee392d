"""The package's modules import each other one way only: no cycle, not even for types.

Every ``import`` statement counts, wherever it is: at module level, under
``if TYPE_CHECKING:``, or inside a function (a lazy import is still a dependency). A
cycle means two modules cannot be read, tested or changed apart; the Loader's modules
are layered (``loader`` -> ``sources`` / ``snapshot`` / ``explanation`` -> ``cache`` ->
``origin`` -> ``files``) and this keeps them so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agentos_secrets

PACKAGE = "agentos_secrets"
ROOT = Path(agentos_secrets.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                targets.add(child if child in modules else source)
    return {t for t in targets if t in modules and t != module}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_graph_sees_type_only_and_lazy_imports() -> None:
    """The parser is not blind: it finds the imports the layering depends on."""
    graph = _graph()
    assert f"{PACKAGE}.changes" in graph[f"{PACKAGE}.loader"]  # lazy, inside watch()
    assert f"{PACKAGE}.sources" in graph[f"{PACKAGE}.snapshot"]  # TYPE_CHECKING only
    assert f"{PACKAGE}.cache" in graph[f"{PACKAGE}.loader"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_name_crosses_the_loader_modules_one_way() -> None:
    """``get()``'s path: loader -> sources -> cache -> files, none importing back up."""
    graph = _graph()
    below = {
        "sources": {"loader", "snapshot", "explanation", "cache"},
        "cache": {"loader", "sources", "snapshot", "explanation"},
        "origin": {"loader", "sources", "cache"},
        "files": {"loader", "sources", "cache", "origin", "snapshot"},
    }
    for module, above in below.items():
        imported = {m.removeprefix(PACKAGE + ".") for m in graph[f"{PACKAGE}.{module}"]}
        assert not imported & above, (module, imported & above)
