"""The package's shape: no import cycles, and the layer contract in pyproject.toml holds."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
PACKAGE = "whisper_tune"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``), for every module of the package."""
    found = {}
    for path in sorted((SOURCE / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports, at any depth (functions included)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                # "from pkg import module" imports the module, "from module import name" the module
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in map(known, targets) if t and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # ggml.py imports its quantizer and the whisper.cpp check only inside export_ggml
    assert {"whisper_tune.convert.ggml_quant", "whisper_tune.convert.ggml_check"} <= graph[
        "whisper_tune.convert.ggml"
    ]
    assert "whisper_tune.zoo" in graph["whisper_tune.resolve"]


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    report = [
        " ↔ ".join(cycle)
        + "".join(f"\n    {m} → {', '.join(sorted(graph[m] & set(cycle)))}" for m in cycle)
        for cycle in import_cycles(graph)
    ]
    assert not report, "import cycles:\n" + "\n".join(report)


def test_every_top_level_module_has_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    layered = {
        name.strip() for layer in contract["layers"] for name in layer.replace("|", ":").split(":")
    }
    top_level = {".".join(m.split(".")[:2]) for m in _modules() if m != PACKAGE}
    assert top_level - layered == set(), "add these to a layer in [tool.importlinter]"


def test_import_contract_holds():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' (import-linter)")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
