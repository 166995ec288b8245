"""The library's layers: dependencies point one way, with no cycle and no import hidden in a function to dodge one.

Read from the source with ``ast`` (module-level imports, ``TYPE_CHECKING`` blocks excluded), so the test
sees what Python executes at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "datapipe_cdk"

# Lower number = lower layer. A module may import only modules of its own or a lower layer.
LAYERS: dict[str, int] = {
    "errors": 0, "units": 0, "principal": 0, "settings": 0, "manifest": 0, "_toolchain": 0,
    "plan": 0, "compactor": 0, "_cdk": 0, "heartbeat": 0,
    "local": 0,  # the local stack's launcher: standard library only at import time
    "_core": 1, "_validate": 1, "target": 1, "worker_secrets": 1, "connect_api": 1,
    "providers": 2,
    "schema": 3, "sql": 3, "acl": 3, "typemap": 4, "compaction": 4, "freshness": 4, "topic": 4,
    "source": 5, "dataset": 5, "sink": 6, "warehouse": 7,
    "governance": 8,
    "stack": 9,
    "access": 10, "lineage": 10, "catalog": 10, "teamspec": 10, "app": 10, "deploy": 10,
    "cli": 11,
    "runtime": 12,
}  # fmt: skip
FUNCTION_IMPORTS_ALLOWED = {"datapipe_cdk.cli"}
"""The CLI imports each command's modules when the command runs, so ``datapipe --help`` stays instant."""


def _modules() -> dict[str, Path]:
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = file
    return found


def _imports(name: str, file: Path, known: set[str]) -> tuple[set[str], list[tuple[str, int]]]:
    """(module-level imports of datapipe_cdk modules, imports made inside functions)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    top: set[str] = set()
    inner: list[tuple[str, int]] = []

    def target(node: ast.ImportFrom, alias: str) -> str | None:
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        if not module.startswith("datapipe_cdk"):
            return None
        full = f"{module}.{alias}"
        return full if full in known else module

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True)
                continue
            names: list[str | None] = []
            if isinstance(child, ast.ImportFrom):
                names = [target(child, a.name) for a in child.names]
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name.startswith("datapipe_cdk")]
            for found in names:
                if found and found != name:
                    (inner.append((found, child.lineno)) if in_function else top.add(found))
            visit(child, in_function)

    visit(ast.parse(file.read_text()), False)
    return top, inner


def _graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int]]]]:
    modules = _modules()
    graph, inner = {}, {}
    for name, file in modules.items():
        graph[name], inner[name] = _imports(name, file, set(modules))
    return graph, inner


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles_in_the_library():
    graph, _ = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := walk(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_every_module_imports_only_its_own_or_lower_layers():
    graph, _ = _graph()
    wrong = []
    for module, imports in graph.items():
        mine = _layer(module)
        if mine is None:
            continue
        for imported in imports:
            theirs = _layer(imported)
            if theirs is not None and theirs > mine:
                wrong.append(f"{module} (layer {mine}) imports {imported} (layer {theirs})")
    assert not wrong, "\n".join(wrong)
    unknown = sorted({m.split(".")[1] for m in graph if "." in m} - set(LAYERS))
    assert not unknown, f"modules without a layer in LAYERS: {unknown}"


def test_no_library_module_imports_another_inside_a_function():
    _, inner = _graph()
    hidden = [f"{module}:{line} imports {target}" for module, found in inner.items() for target, line in found]
    hidden = [h for h in hidden if h.split(":")[0] not in FUNCTION_IMPORTS_ALLOWED]
    assert not hidden, "imports inside functions (a hidden cycle or a missing layer):\n" + "\n".join(hidden)
