"""Import structure of the package: stages import shared layers (and themselves), never each other.

Every module under ``src/affinitomo`` is parsed (nothing is imported); every ``affinitomo``
import counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import affinitomo

ROOT = Path(affinitomo.__file__).parent

#: Packages and modules the stages share; each imports only other layers.
LAYERS = {
    "",  # the package itself: __version__
    "errors", "options", "progress", "geometry", "versions",  # foundations
    "io",  # file formats
    "labels",  # class names and numbers of the result tables
    "density",  # scores, SO(3) grids, filters, masks, resampling, CTF
    "search",  # SO(3) x shift searches
    "grouping",  # clustering shared by cluster and averaging
    "model",  # the Affinity-VAE, its checkpoint, config and loading
    "evaluate",  # metrics against ground truth
    "umap_file",  # the stored UMAP model
    "plots",  # figures
}

#: One package or module per pipeline stage; a stage imports layers and itself only.
STAGES = {
    "simulate", "pick", "extract", "subtomogram_import", "similarity", "match", "train", "encode",
    "embed", "gather", "cluster", "averaging", "napari",
}

#: Modules that compose several stages in one process, and so may import other stages.
ORCHESTRATORS = {
    "affinitomo.cli",  # the command line: one verb per stage
    "affinitomo.__main__",  # python -m affinitomo
    "affinitomo.apply",  # a trained run on new tomograms: pick/match, extract, encode, embed, cluster
    # run_cluster: the classify, average and report steps in one process; StageOptions holds AlignOptions.
    "affinitomo.cluster.pipeline",
    "affinitomo.napari.demo",  # the viewer's demo: a simulated data set written as results
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (annotations only: no import at run time)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports() -> list[tuple[str, str]]:
    """(importing module, imported affinitomo module) for every import in the package, but those under
    ``if TYPE_CHECKING:``."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # ``from pkg import sub`` imports the submodule pkg.sub when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges += [(name, t) for t in targets if t.split(".")[0] == "affinitomo" and t in modules]
    return edges


def unit(module: str) -> str:
    """The top-level package or module under affinitomo: ``affinitomo.io.tables`` -> ``io``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def is_orchestrator(module: str) -> bool:
    return any(module == o or module.startswith(o + ".") for o in ORCHESTRATORS)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_unit_is_classified():
    units = {unit(module_name(p)) for p in ROOT.rglob("*.py")} - {"__main__", "cli", "apply"}
    assert units <= LAYERS | STAGES, f"not a layer or a stage: {sorted(units - LAYERS - STAGES)}"
    assert not LAYERS & STAGES


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in imports():
        if unit(a) != unit(b):
            graph[unit(a)].add(unit(b))
    assert cycles(graph) == []


def test_stages_import_only_layers_and_themselves():
    wrong = sorted(f"{a} -> {b}" for a, b in imports()
                   if unit(a) in STAGES and unit(b) != unit(a) and unit(b) not in LAYERS and not is_orchestrator(a))
    assert wrong == []


def test_layers_import_no_stage():
    wrong = sorted(f"{a} -> {b}" for a, b in imports() if unit(a) in LAYERS and unit(b) not in LAYERS)
    assert wrong == []


def test_no_import_cycle_between_stage_modules():
    """Within a stage package too (e.g. the picking modules): modules form a hierarchy."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in imports():
        if unit(a) == unit(b) and unit(a) in STAGES | LAYERS and a != b and not b == a.rpartition(".")[0]:
            graph[a].add(b)
    assert cycles(graph) == []
