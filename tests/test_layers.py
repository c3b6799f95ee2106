"""The package's layers, kept by tools: import-linter's layers contract (pyproject.toml), no import
cycle between modules (imports inside functions included), and no import of the package written
inside a function, where it would hide a cycle from a reader (docs/design.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "msa_utils"


def test_the_layers_contract_holds():
    # in a process of its own: import-linter reconfigures logging (it disables existing loggers)
    linter = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run([str(linter), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def _strongly_connected(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in adjacency[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(adjacency):
        if module not in index:
            visit(module)
    return [group for group in groups if len(group) > 1]


def test_no_import_cycle_counting_imports_inside_functions():
    graph = grimp.build_graph("msa_utils", cache_dir=None)
    adjacency = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(adjacency) > 30, "the graph does not see the package's modules"
    assert _strongly_connected(adjacency) == []


def test_no_import_of_the_package_inside_a_function():
    inside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                         [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(n == "msa_utils" or n.startswith("msa_utils.") for n in names) or getattr(node, "level", 0):
                    inside.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert inside == []


def test_a_heavy_library_imported_inside_a_function_says_why():
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            imports = [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
            for node in imports:
                block = lines[min(i.lineno for i in imports) - 2:node.end_lineno]
                if not any("#" in line for line in block):
                    silent.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert silent == [], "an import inside a function needs a comment saying why it is not at the top"
