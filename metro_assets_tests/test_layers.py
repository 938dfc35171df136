"""The code's structure: no import cycles, and no Dagster below the asset layer.

The asset layer is ``definitions.py``, ``resources.py``, ``partitions.py``, ``runs.py`` (the executor),
``assets.py`` and each stage's ``assets.py``/``checks.py``/``sensors.py``/
``schedules.py``/``automation.py``. Everything else (the domain logic, the
settings, the errors, the warehouse helpers, the API) must import without
Dagster, even indirectly, so it can be tested and reused on its own.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("metro_assets", "api")
LAYER = {"definitions", "resources", "partitions", "runs", "assets", "checks", "sensors", "schedules", "automation", "demo"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def project_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its body (lazy imports count)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def test_there_are_no_import_cycles():
    mods = modules()
    graph = {name: project_imports(path, name, set(mods)) for name, path in mods.items()}
    # a package's __init__ importing its own submodules is not a cycle worth reporting
    graph = {n: {t for t in ts if not (n and t.startswith(n + "."))} for n, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def below_the_asset_layer() -> list[str]:
    return sorted(name for name in modules() if name.rpartition(".")[2] not in LAYER and name not in PACKAGES)


def test_nothing_below_the_asset_layer_imports_dagster():
    names = below_the_asset_layer()
    assert "metro_assets.simulation.world" in names and "metro_assets.settings" in names
    assert "metro_assets.raw.assets" not in names and "api.app" in names
    # a fresh interpreter: what these modules pull in, directly or not
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith(('dagster.', 'dagster_')))\n"
            "    if bad:\n"
            "        print(name, bad[0]); sys.exit(1)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"imports Dagster below the asset layer: {done.stdout.strip()} {done.stderr[-500:]}"
