"""The package layout keeps its promises: imports point one way (entry points → training/publish →
registry → models/features/quality → data → config), there is no import cycle inside ``ml/``, and the
paths that run every few minutes (serving reader, refresh) never import the training package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ml"

#: Layer of each top-level part of ``ml`` (a module may import its own layer or lower ones only).
LAYERS: dict[str, int] = {
    "ml.config": 0,
    "ml.contracts": 0,
    "ml.db": 0,
    "ml.experiment": 0,  # the A/B user split and run (publisher, reader and report share it)
    "ml.data": 1,
    "ml.features": 2,
    "ml.quality": 2,
    "ml.models": 2,
    "ml.search": 2,  # query understanding, relevance sources, search rows and ranker
    "ml.search.serve": 3,  # the registered search champion as a list provider (publish reads it)
    "ml.search.train": 4,  # the search stage of a training run
    "ml.search.cut_rows": 4,  # its rows per point-in-time cut (taken from the work beside the builds)
    "ml.registry": 3,
    "ml.training": 4,
    "ml.publish": 4,
    "ml.serving": 5,
    "ml.orchestration": 5,
    "ml.cli": 6,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``ml.*`` module imported anywhere in the file (module level and inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "ml"
            and node.level == 0
        ):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if _exists(full) else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "ml"}
    return out


def _exists(module: str) -> bool:
    p = ROOT.joinpath(*module.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS")


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def test_every_import_points_down_or_sideways() -> None:
    upward = [
        f"{mod} (layer {_layer(mod)}) imports {dep} (layer {_layer(dep)})"
        for mod, deps in _graph().items()
        if mod != "ml"
        for dep in deps
        if dep != "ml" and _layer(dep) > _layer(mod)
    ]
    assert not upward, "imports must point down the pipeline:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_inside_ml() -> None:
    graph = _graph()
    # resolve "ml.registry" style package imports to their __init__ module (present in the graph)
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


@pytest.mark.parametrize(
    ("entry", "forbidden"),
    [
        ("ml.serving.app", ("ml.training", "ml.registry", "tensorflow", "mlflow", "lightgbm")),
        ("ml.publish.refresh", ("ml.training",)),
        ("ml.publish.run", ("ml.training",)),
        ("ml.registry.champion", ("ml.training",)),
        ("ml.orchestration.tasks", ("ml.training",)),
    ],
)
def test_hot_paths_do_not_import_training(entry: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({entry!r}); "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {{f.split('.')[0] for f in {forbidden!r}}} "
        f"and any(m == f or m.startswith(f + '.') for f in {forbidden!r})); print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"importing {entry} pulled in {out.stdout.strip()}"


def test_no_module_is_a_room_with_many_purposes() -> None:
    """No module over ~350 lines unless its docstring says why (issue 12's size rule)."""
    long = []
    for p in PKG.rglob("*.py"):
        n = len(p.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or ""
        if n > 350 and "Longer than" not in doc:
            long.append(f"{p.relative_to(ROOT)}: {n} lines")
    assert not long, (
        "split these modules or state in the docstring why not ('Longer than ... because ...'):\n"
        + "\n".join(long)
    )
