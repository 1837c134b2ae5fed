"""How the package's modules import each other: no cycle, and a light config.

The layers run one way (config and the task kinds' options, data, tasks' behaviour, modeling,
training, evaluation and analysis, cli), so that every module can be read, imported and
tested without the ones above it. Imports under `if TYPE_CHECKING:` never run and are left out;
imports inside functions run when the function does and count.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml

import mtlm

PACKAGE = Path(mtlm.__file__).parent
#: What validating a config must not import: each takes seconds to load.
HEAVY = ("torch", "transformers", "sklearn", "datasets")


def module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _runs(node: ast.AST) -> list[ast.AST]:
    """The statements under `node` that can run: all but the bodies of `if TYPE_CHECKING:`."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
            found.extend(_runs(ast.Module(body=child.orelse, type_ignores=[])))
            continue
        found.append(child)
        found.extend(_runs(child))
    return found


def imported(name: str, path: Path, modules: dict[str, Path], type_hints: bool = False) -> set[str]:
    """The package's modules that module `name` imports, at its top or in a function, and with
    `type_hints` also under `if TYPE_CHECKING:`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    targets = set()
    for node in ast.walk(tree) if type_hints else _runs(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for target in targets:
        # `from mtlm.tasks import KINDS` imports the package mtlm.tasks, not a module KINDS
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others() -> None:
    modules = module_names()
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    assert "mtlm.tasks" in graph["mtlm.config"]  # the walk sees imports at all
    assert cycles(graph) == []


def test_the_prediction_path_is_in_no_cycle_even_through_type_hints() -> None:
    """`MultiTaskModel.predict` calls `mtlm.inference`, which knows the model as a `Predictor`
    only: no module of prediction reaches back to the model, not even for a type hint."""
    modules = module_names()
    graph = {name: imported(name, path, modules, type_hints=True) for name, path in modules.items()}
    assert "mtlm.modeling.sharing" in graph["mtlm.inference.predictor"]  # type hints are seen
    prediction = {"mtlm.modeling.multitask_model", "mtlm.modeling.routed_model", "mtlm.pipeline"}
    prediction |= {name for name in modules if name.startswith("mtlm.inference")}
    assert [group for group in cycles(graph) if prediction & set(group)] == []


def test_config_validation_imports_no_heavy_library(tmp_path: Path) -> None:
    """Importing the config and validating a file (in a fresh process) loads neither torch
    nor transformers, scikit-learn or datasets, for tasks of every kind and a preset."""
    from mtlm.tasks import KINDS

    tasks = [
        {"name": f"task{index}", "kind": kind, "data": {"train": "train.jsonl"}}
        for index, kind in enumerate(KINDS)
    ] + [{"data": {"preset": "glue/mrpc"}}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"model": {"name_or_path": "x"}, "tasks": tasks}))
    script = (
        "import json, sys\n"
        "from mtlm.config import load_config\n"
        f"load_config({str(path)!r})\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


def test_a_config_error_from_the_command_imports_no_heavy_library(tmp_path: Path) -> None:
    """`mtlm train` with a config mistake says so before torch or transformers load."""
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name_or_path: x}\ntasks: []\n")
    script = (
        "import json, sys\n"
        "from mtlm.cli import main\n"
        f"status = main(['train', {str(path)!r}])\n"
        f"print(json.dumps([status, [name for name in {HEAVY!r} if name in sys.modules]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == [2, []]
    assert done.stderr.startswith(f"mtlm: error: {path}, line 2: tasks: ")
