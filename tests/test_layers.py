"""The package's import graph: no cycles, and no import against the declared layer order.

Module-level and function-level imports both count (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` do not. Dataset synthesis (``vision.synth``) is a leaf: only tools, benchmarks and tests
import it.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vision"

# lowest first; a module may import its own layer and the ones before it. A pattern "=name" is that module only,
# "name." its submodules only, "name" the module and its submodules; the first layer with a match wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("=vision", "=vision.brands", "vision.fileio", "vision.names", "vision.arrays", "vision.store",
              "vision.progress", "=vision.serving",
              "=vision.tasks", "vision.data.preprocessing",
              "vision.ultralytics_compat", "=vision.data")),
    ("nn", ("vision.models",)),
    ("data", ("vision.data.", "vision.crops", "vision.serving.images")),
    ("zoo", ("vision.zoo", "vision.tasks.cards", "vision.tasks.networks")),
    ("training", ("vision.training", "vision.reports")),
    ("export", ("vision.export", "vision.serving.runtime", "vision.serving.repository",
                "vision.serving.server")),  # the served repository is an export format
    ("inference", ("vision.inference", "vision.results", "vision.predictors",
                   "vision.features", "vision.brands.verification")),
    ("retrieval", ("vision.retrieval", "vision.brands.detection_rule", "vision.brands.gallery", "vision.brands.ocr",
                   "vision.brands.recognition", "vision.brands.fusion", "vision.brands.views")),
    ("tasks", ("vision.tasks.",)),
    ("apps", ("vision.brands.building", "vision.scale", "vision.dedup", "vision.clustering", "vision.benchmarking",
              "vision.evaluation", "vision.serving.models")),
    ("cli", ("vision.cli", "vision.commands", "vision.__main__")),
]
LEAVES = ("vision.synth",)
LEAF_USERS = ("vision.commands.", "vision.brands.building")  # the dataset commands and gallery building use synthesis


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _matches(module: str, pattern: str) -> bool:
    if pattern.startswith("="):
        return module == pattern[1:]
    if pattern.endswith("."):
        return module.startswith(pattern)
    return module == pattern or module.startswith(pattern + ".")


def _layer(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(_matches(module, p) for p in patterns):
            return rank
    raise AssertionError(f"{module} has no layer in tests/test_layers.py; add it to LAYERS")


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for b in node.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                target = _resolve(name, modules) if name.split(".")[0] == "vision" else None
                if target and target != module:
                    graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_imports_follow_the_layer_order():
    graph = import_graph()
    wrong = []
    for module, targets in graph.items():
        if module.startswith(LEAVES):
            continue
        for target in targets:
            if target.startswith(LEAVES):
                if not module.startswith(LEAF_USERS):
                    wrong.append(f"{module} -> {target} (dataset synthesis is a leaf)")
            elif target != "vision" and _layer(target) > _layer(module):
                wrong.append(f"{module} ({LAYERS[_layer(module)][0]}) -> {target} ({LAYERS[_layer(target)][0]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_module_has_its_declared_layer():
    layers = {m: LAYERS[_layer(m)][0] for m in import_graph() if not m.startswith(LEAVES)}
    assert layers["vision"] == "core" and layers["vision.tasks"] == "core" and layers["vision.zoo.registry"] == "zoo"
    assert layers["vision.tasks.cards"] == "zoo" and layers["vision.tasks.embedding"] == "tasks"
    assert layers["vision.data.io"] == "data" and layers["vision.predictors"] == "inference"


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "vision.tasks.networks" in graph["vision.zoo.registry"] or "vision.tasks" in graph["vision.zoo.registry"]
    assert "vision.models.detector" in graph["vision.tasks.networks"]  # imported inside a function
