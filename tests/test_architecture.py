"""The package's import structure: no cycles, layers import downward, core never imports the research package.

Every module of `salmonn_o1` is parsed (not imported) and every import of
`salmonn_o1.*` in it is collected, at module level and inside functions
alike: a function-level import that dodges a cycle is still a cycle in the
design. The layer table below says which layers each layer may import; a new
module is placed by its name prefix, and a module that matches no prefix
fails until it is placed.
"""

from __future__ import annotations

import ast
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import salmonn_o1

ROOT = "salmonn_o1"
RESEARCH_PACKAGE = "salmonn_o1_mini"

# Module-name prefix -> layer; the longest matching prefix wins.
LAYER_OF = {
    # foundation: error types, plain media/text types and the text protocol; no model, no config
    "salmonn_o1.errors": "foundation",
    "salmonn_o1.media_types": "foundation",
    "salmonn_o1.prompts": "foundation",
    "salmonn_o1.tokenizer": "foundation",
    "salmonn_o1.chat": "foundation",
    "salmonn_o1.reasoning": "foundation",
    "salmonn_o1.components": "foundation",  # resolves recipe components by name at run time
    "salmonn_o1.runtime": "foundation",  # the process's CPU threads, set once at start-up
    "salmonn_o1.launch": "foundation",  # the accelerate launch a process runs in: rank, device, collectives
    "salmonn_o1.messages": "foundation",  # typed chat content items -> our text chat + its media input
    "salmonn_o1.remote_code": "foundation",  # the auto_map and shim modules a saved config carries
    "salmonn_o1.config": "config",
    # items, benchmark loaders, answer extraction and metrics, the JSONL record store
    "salmonn_o1.data": "data",
    "salmonn_o1.eval": "data",
    "salmonn_o1.records": "data",
    # AVR-Synth, a product: importable, but training, pDPO, model and config code never import it
    "salmonn_o1.data.synthetic": "synthetic",
    # recipe components on top of AVR-Synth (named in recipes, resolved by name, imported by nobody)
    "salmonn_o1.data.synthetic.sft_source": "synthetic_components",
    "salmonn_o1.data.synthetic.pdpo_questions": "synthetic_components",
    # the model and what turns files and text into its inputs
    "salmonn_o1.model": "model",
    "salmonn_o1.features": "model",
    "salmonn_o1.media": "model",
    "salmonn_o1.processor": "model",
    "salmonn_o1.auto": "model",  # registration with transformers' Auto classes (names the model classes)
    # the released checkpoint layout (an adapter above the model) and the loader choosing a layout
    "salmonn_o1.release": "loading",
    "salmonn_o1.checkpoints": "loading",
    # decoding, the pipeline, batch inference
    "salmonn_o1.generation": "inference",
    "salmonn_o1.kv_cache": "inference",
    "salmonn_o1.decoding": "inference",
    "salmonn_o1.inference": "inference",
    "salmonn_o1.batch_inference": "inference",
    "salmonn_o1.train": "train",
    "salmonn_o1.pdpo": "pdpo",
    "salmonn_o1.grpo": "grpo",  # GRPO beside pDPO: reuses pDPO's judge, questions and reference switch
    # the HTTP server: above inference, beside the commands (`commands.serve` starts it)
    "salmonn_o1.serve": "serve",
    # the browser page (gradio), above inference beside the commands; only the `ui` command imports it
    "salmonn_o1.ui": "ui",
    # adapters for other tools (lmms-eval): above inference, beside the commands, imported by nobody
    "salmonn_o1.integrations": "integrations",
    # `datagen`: question generation through OpenAI-compatible endpoints (openai client + our media decoding)
    "salmonn_o1.datagen": "datagen",
    "salmonn_o1.commands": "commands",
    "salmonn_o1.cli": "commands",
    "salmonn_o1.__main__": "commands",
}

# Layer -> the layers its modules may import (its own included). Read a row as "X sits above these".
MAY_IMPORT = {
    "foundation": {"foundation"},
    "config": {"foundation", "config"},
    "data": {"foundation", "data"},
    "synthetic": {"foundation", "data", "synthetic"},
    "model": {"foundation", "config", "model"},
    "loading": {"foundation", "config", "model", "loading"},
    "inference": {"foundation", "config", "data", "model", "loading", "inference"},
    "train": {"foundation", "config", "data", "model", "loading", "inference", "train"},
    "pdpo": {"foundation", "config", "data", "model", "loading", "inference", "train", "pdpo"},
    "grpo": {"foundation", "config", "data", "model", "loading", "inference", "train", "pdpo", "grpo"},
    "integrations": {"foundation", "config", "data", "model", "loading", "inference", "integrations"},
    "synthetic_components": {"foundation", "config", "data", "synthetic", "model", "loading", "inference",
                             "train", "pdpo", "synthetic_components"},
    "serve": {"foundation", "config", "data", "model", "loading", "inference", "serve"},
    "ui": {"foundation", "config", "data", "model", "loading", "inference", "ui"},
    "datagen": {"foundation", "config", "data", "model", "datagen"},
    "commands": {"foundation", "config", "data", "synthetic", "synthetic_components", "model", "loading",
                 "inference", "train", "pdpo", "grpo", "api", "serve", "ui", "datagen", "commands"},
    # the package root: the public API, imported lazily (PEP 562) from the layers below
    "api": {"foundation", "config", "data", "model", "loading", "inference", "train", "pdpo", "api"},
}

@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported salmonn_o1 module (or package)
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "in a function" if self.in_function else "module level"
        return f"{self.source}:{self.line} ({where}) -> {self.target}"


@cache
def module_files() -> dict[str, Path]:
    """Every module and package of salmonn_o1 -> its source file (packages: their __init__.py)."""
    files = {ROOT: Path(salmonn_o1.__file__)}

    def fail(name: str) -> None:
        raise ImportError(f"cannot walk {name}")

    for info in pkgutil.walk_packages(salmonn_o1.__path__, prefix=f"{ROOT}.", onerror=fail):
        spec = info.module_finder.find_spec(info.name.rpartition(".")[2])
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            files[info.name] = Path(spec.origin)
    return files


def _resolve(name: str, modules: dict[str, Path]) -> str:
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        # (candidate dotted names, line, in a function): the first candidate that is a module is imported
        self.found: list[tuple[tuple[str, ...], int, bool]] = []

    def _function(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append(((alias.name,), node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself
            self.found.append(((f"{module}.{alias.name}", module), node.lineno, self.depth > 0))

    def visit_Constant(self, node: ast.Constant) -> None:
        # a dotted path in a string is an import by name (importlib, recipe components): only the
        # research package's are collected (see test_core_never_imports_the_research_package)
        if isinstance(node.value, str) and re.fullmatch(rf"{RESEARCH_PACKAGE}(\.\w+)*(:\w+)?", node.value):
            self.found.append(((node.value,), node.lineno, self.depth > 0))


@cache
def all_imports() -> tuple[list[Import], list[tuple[str, str, int]]]:
    """salmonn_o1 -> salmonn_o1 imports, and (module, name, line) for every import of the research package."""
    modules = module_files()
    edges: set[Import] = set()
    research: list[tuple[str, str, int]] = []
    for module, path in modules.items():
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        for candidates, line, in_function in collector.found:
            name = next((c for c in candidates if c in modules), candidates[-1])
            if name == RESEARCH_PACKAGE or name.startswith(f"{RESEARCH_PACKAGE}."):
                research.append((module, name, line))
            elif name == ROOT or name.startswith(f"{ROOT}."):
                target = _resolve(name, modules)
                if target != module:
                    edges.add(Import(module, target, line, in_function))
    return sorted(edges, key=lambda e: (e.source, e.line, e.target)), research


def layer_of(module: str) -> str | None:
    if module == ROOT:
        return "api"
    matches = [prefix for prefix in LAYER_OF if module == prefix or module.startswith(f"{prefix}.")]
    return LAYER_OF[max(matches, key=len)] if matches else None


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """One cycle (as a module path that returns to its start) per strongly connected component."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        start = min(component)
        # the shortest way back to `start` inside the component (breadth first)
        previous = {start: None}
        frontier = [start]
        while frontier and start not in [n for f in frontier for n in graph[f]]:
            following = []
            for node in frontier:
                for nxt in sorted(graph[node] & component):
                    if nxt not in previous:
                        previous[nxt] = node
                        following.append(nxt)
            frontier = following
        last = next(f for f in frontier if start in graph[f])
        path = [last]
        while previous[path[-1]] is not None:
            path.append(previous[path[-1]])
        cycles.append([*reversed(path), start])
    return cycles


def _describe(cycle: list[str], edges: list[Import]) -> str:
    steps = []
    for source, target in zip(cycle, cycle[1:]):
        where = next(e for e in edges if e.source == source and e.target == target)
        steps.append(f"  {where}")
    return "\n".join(steps)


def test_every_module_is_found_and_parsed():
    modules = module_files()
    on_disk = {path.resolve() for path in Path(salmonn_o1.__file__).parent.rglob("*.py")}
    missed = sorted(str(path) for path in on_disk - {path.resolve() for path in modules.values()})
    assert not missed, f"not walked (a folder without __init__.py?): {missed}"
    assert {"salmonn_o1.model.modeling", "salmonn_o1.release.loading", "salmonn_o1.train.trainer"} <= set(modules)
    edges, _ = all_imports()
    assert any(e.source == "salmonn_o1.processor" and e.target == "salmonn_o1.config" for e in edges)


def test_there_is_no_import_cycle():
    edges, _ = all_imports()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles (function-level imports count):\n" + "\n\n".join(
        " -> ".join(cycle) + "\n" + _describe(cycle, edges) for cycle in cycles
    )


def test_the_cycle_finder_reports_a_cycle_through_a_function_level_import():
    edges = [Import("a", "b", 1, False), Import("b", "c", 3, False), Import("c", "a", 7, True),
             Import("c", "d", 8, False)]
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert "c:7 (in a function) -> a" in _describe(["a", "b", "c", "a"], edges)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in module_files() if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add their prefix to LAYER_OF): {unplaced}"


@pytest.mark.parametrize("module", sorted(module_files()))
def test_imports_go_down_the_layers(module):
    layer = layer_of(module)
    assert layer is not None, f"{module} is in no layer"
    edges, _ = all_imports()
    upward = [f"{edge} (layer {layer_of(edge.target)})" for edge in edges
              if edge.source == module and layer_of(edge.target) not in MAY_IMPORT[layer]]
    assert not upward, f"{module} (layer {layer}) may import only {sorted(MAY_IMPORT[layer])}:\n" + "\n".join(upward)


def test_the_layer_table_is_consistent():
    assert set(LAYER_OF.values()) | {"api"} == set(MAY_IMPORT)
    for layer, allowed in MAY_IMPORT.items():
        assert layer in allowed
        for lower in allowed:  # a layer may import everything its lower layers may (no sideways holes)
            assert MAY_IMPORT[lower] <= allowed, (layer, lower)
    assert "loading" not in MAY_IMPORT["model"], "the model never imports the released layout"
    assert not any("synthetic" in MAY_IMPORT[core] for core in ("config", "model", "train", "pdpo")), \
        "training, pDPO, model and config code never import AVR-Synth"


def test_core_never_imports_the_research_package():
    """Neither with an import statement nor by name (a dotted path in a string, as importlib or a
    recipe's `_component_` takes it): research components are named by recipes, not by core code."""
    _, research = all_imports()
    assert not research, "salmonn_o1 imports salmonn_o1_mini: " + ", ".join(
        f"{module}:{line} -> {name}" for module, name, line in research
    )


def test_the_research_import_finder_sees_statements_and_dotted_names():
    collector = _Collector("salmonn_o1.checkpoints", is_package=False)
    collector.visit(ast.parse(
        "import salmonn_o1_mini.recall\n"
        "def seed(model):\n"
        "    from salmonn_o1_mini.recall import seed_recall_circuit\n"
        "    return resolve({'_component_': 'salmonn_o1_mini.recall.SeedRecall'})\n"
        "DOC = 'the research package, salmonn_o1_mini, is not imported here'\n"
    ))
    found = [(names[-1], line, in_function) for names, line, in_function in collector.found]
    assert found == [("salmonn_o1_mini.recall", 1, False), ("salmonn_o1_mini.recall", 3, True),
                     ("salmonn_o1_mini.recall.SeedRecall", 4, True)]


def test_test_modules_have_unique_names():
    """The test folders are not packages, so pytest imports each test file by its bare name: two files
    with one name (tests/pdpo/test_loss.py and tests/grpo/test_loss.py) break collection of the whole
    suite, though each folder passes alone."""
    tests = Path(__file__).parent
    seen: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
