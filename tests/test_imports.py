"""No two modules of the package import each other, lazy imports included.

Every ``import`` statement anywhere in a module (top level, inside functions, under
``TYPE_CHECKING``) is an edge. A package being imported because one of its submodules is
(``stackit_nb.local.engines`` when ``stackit_nb.local.engines.interface`` is imported) is not
counted: that is how every Python package loads, and it cannot deadlock on a half-built name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import stackit_nb

ROOT = Path(stackit_nb.__file__).parent
PACKAGE = "stackit_nb.local"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / "local").rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_local_modules_import_each_other() -> None:
    modules = _modules()
    assert f"{PACKAGE}.engines.smollm2" in modules and f"{PACKAGE}.validate" in modules
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert f"{PACKAGE}.engines.interface" in graph[f"{PACKAGE}.validate"]  # edges are seen
    assert _cycles(graph) == []


def test_engines_and_validation_stay_apart() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    for name, imported in graph.items():
        if name.startswith(f"{PACKAGE}.engines"):
            assert not imported & {f"{PACKAGE}.validate", f"{PACKAGE}.wire", f"{PACKAGE}.server"}
        if name.startswith(f"{PACKAGE}.engines."):  # a submodule never needs the registry
            assert f"{PACKAGE}.engines" not in imported, name


def test_the_fingerprint_module_loads_neither_the_server_nor_haystack() -> None:
    """Client code (every streamed chunk's meta) and the server share it; it costs neither."""
    code = (
        "import sys; from stackit_nb.fingerprint import engine_fingerprint;"
        "print(engine_fingerprint('smollm2'));"
        "print(sorted(m for m in sys.modules if m.startswith('stackit_nb.') or"
        " m.split('.')[0] in ('fastapi', 'uvicorn', 'llama_cpp', 'haystack', 'openai')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["stackit-nb-local-smollm2", "['stackit_nb.fingerprint']"]


def test_no_two_modules_of_the_package_import_each_other() -> None:
    modules = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    assert "stackit_nb.widgets.chat" in modules and "stackit_nb.errors" in modules
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert "stackit_nb.widgets._chatui" in graph["stackit_nb.widgets.chat"]  # edges are seen
    assert "stackit_nb.models" in graph["stackit_nb.errors"]
    assert _cycles(graph) == []
