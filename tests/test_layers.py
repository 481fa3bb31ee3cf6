"""The import rule, kept by a test beside the linters: each layer of pmsd imports only the layers below it.

    errors < systemd, linux < model < definition < state < context < api < render < cli, god < the package face

Within one package any import is fine as long as no circle forms. Every import counts, including those inside
functions and under TYPE_CHECKING. Imports inside functions are for start-up time only: allowed in the CLI
(its commands import what they use), elsewhere only with a `# lazy:` comment saying why.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "pmsd")

# Layer of each part of pmsd (a subpackage, or one of the few modules at the top), lowest first.
LAYERS: dict[str, int] = {
    "errors": 0,
    "systemd": 1, "linux": 1,
    "model": 2,
    "definition": 3,
    "state": 4,
    "context": 5,
    "api": 6,
    "render": 7,
    "cli": 8,
    "god": 9,  # god runs CLI commands for its callers (pmsd.god.runner), so it sits above the CLI
    "": 10, "__main__": 10,  # pmsd/__init__.py (pmsd.connect) and python -m pmsd
}
TOP_LEVEL_MODULES = {"__init__", "__main__", "errors", "context"}
LAZY_ALLOWED = {"cli"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported pmsd module, dotted
    line: int
    in_function: bool
    reason: bool  # a `# lazy:` comment on the line or the one before


def modules() -> dict[str, str]:
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def part(module: str) -> str:
    """pmsd.api.lifecycle -> "api"; pmsd.errors -> "errors"; pmsd -> ""."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def _resolve(name: str, known: dict[str, str]) -> str | None:
    pieces = name.split(".")
    while pieces:
        if ".".join(pieces) in known:
            return ".".join(pieces)
        pieces.pop()
    return None


def imports(known: dict[str, str]) -> Iterator[Import]:
    for module, path in known.items():
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        lines = source.splitlines()
        tree = ast.parse(source)
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function.update(id(sub) for sub in ast.walk(node) if sub is not node)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            context = " ".join(lines[max(0, node.lineno - 2): node.lineno])
            for name in names:
                target = _resolve(name, known) if name.startswith("pmsd") else None
                if name.startswith("pmsd") and target is None:
                    raise AssertionError(f"{path}:{node.lineno}: {name} is not a pmsd module")
                yield Import(module, target or name, node.lineno, id(node) in in_function, "# lazy:" in context)


def test_every_part_has_a_layer() -> None:
    known = modules()
    for module in known:
        pieces = module.split(".")
        if len(pieces) == 2 and known[module].endswith(f"{pieces[1]}.py"):
            assert pieces[1] in TOP_LEVEL_MODULES, f"{module}: only {sorted(TOP_LEVEL_MODULES)} live at the top"
        assert part(module) in LAYERS, f"{module}: its folder has no layer in tests/test_layers.py"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    known = modules()
    wrong = []
    for found in imports(known):
        if not found.target.startswith("pmsd"):
            continue
        if found.target == "pmsd":
            continue  # only `from pmsd import __version__`: the face imports nothing at module level (below)
        source, target = part(found.source), part(found.target)
        if source != target and LAYERS[target] >= LAYERS[source]:
            wrong.append(f"{found.source}:{found.line} imports {found.target} "
                         f"(layer {LAYERS[source]} may only import layers below it, {target} is {LAYERS[target]})")
    assert not wrong, "\n".join(wrong)


def test_the_package_face_imports_nothing_when_loaded() -> None:
    """Every `import pmsd.x` runs pmsd/__init__.py first: it must stay free of imports (and of their cost)."""
    known = modules()
    eager = [found for found in imports(known) if found.source == "pmsd" and not found.in_function
             and found.target.startswith("pmsd")]
    for found in eager:
        with open(known["pmsd"], encoding="utf-8") as handle:
            assert "if TYPE_CHECKING" in handle.read(), f"pmsd/__init__.py:{found.line} imports {found.target}"


def test_no_import_circles() -> None:
    known = modules()
    graph: dict[str, set[str]] = {module: set() for module in known}
    for found in imports(known):
        if found.target.startswith("pmsd") and found.target != found.source:
            graph[found.source].add(found.target)
    # A package imports its __init__ first: an import of pmsd.x.y also runs pmsd.x (and pmsd).
    circles = _strongly_connected(graph)
    assert not circles, f"import circles: {circles}"


def test_imports_inside_functions_say_why() -> None:
    known = modules()
    unexplained = [f"{found.source}:{found.line} imports {found.target} inside a function"
                   for found in imports(known)
                   if found.in_function and not found.reason and part(found.source) not in LAZY_ALLOWED]
    assert not unexplained, ("imports inside functions outside the CLI need a `# lazy: <why>` comment "
                             "(start-up time), or belong at the top of the module:\n" + "\n".join(unexplained))


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


FUNCTION_MAX_LINES = 60
CLASS_MAX_LINES = 250


def test_no_function_or_class_too_long_to_read() -> None:
    """Big units of code hide their steps: functions stay within 60 lines, classes within 250."""
    too_long = []
    for module, path in modules().items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = CLASS_MAX_LINES if isinstance(node, ast.ClassDef) else FUNCTION_MAX_LINES
            if lines > limit:
                too_long.append(f"{module}.{node.name}: {lines} lines (at most {limit})")
    assert not too_long, "\n".join(too_long)
