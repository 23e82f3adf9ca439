"""The house plan, checked: imports flow one way (core ← stages ← analysis / notebook / deploy /
bench ← cli) and no module of the package imports itself back through another."""
from __future__ import annotations

import ast
from pathlib import Path

import kagglebert

PACKAGE = Path(kagglebert.__file__).parent
# a layer may import from the layers listed for it (and from itself)
ALLOWED = {
    "core": {"core"},
    "stages": {"core", "stages"},
    "analysis": {"core", "stages", "analysis"},
    "notebook": {"core", "stages", "analysis", "notebook", "deploy"},
    "deploy": {"core", "stages", "deploy"},
    "bench": {"core", "stages", "bench"},
    "top": {"core", "stages", "analysis", "notebook", "deploy", "bench", "top"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every kagglebert module `path` imports, at any depth of the file (a lazy import counts)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("kagglebert"):
                continue
            for alias in node.names:  # `from . import lm` imports the module kagglebert.stages.lm
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kagglebert")}
    return {m for m in found if m in MODULES and m != name}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in FILES}
GRAPH = {module_name(p): imported_modules(p) for p in FILES}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "top"


def test_layers_import_only_downwards():
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
             if layer(t) not in ALLOWED[layer(m)] and not m.endswith("__main__")]
    assert wrong == []


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if target == module.rsplit(".", 1)[0] or module == target.rsplit(".", 1)[0] and target.endswith("__init__"):
                continue
            if state.get(target) == 1:
                cycles.append(" → ".join(path[path.index(target):] + [target]) if target in path else f"{module} → {target}")
            elif state.get(target) is None:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []
