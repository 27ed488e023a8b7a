"""The package's shape along the study's data path, kept by a test so that later work does not undo it: a metric's
name, an executor's name and a report folder's file names each spelled in one module; no module of the study,
evaluation, analysis or reporting code over 400 lines and no class over 200; imports one way, reporting ->
analysis -> evaluation, the study driving them all."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

from nnunet_archs.evaluation.metrics import METRIC_NAMES
from nnunet_archs.study.executors import EXECUTORS

PACKAGE = Path(__file__).parents[1] / "nnunet_archs"
FILE_NAMES = ("study.json", "layout.json", "per_case.csv")
# each layer may import those after it, never those before it
LAYERS = ("study", "reporting", "analysis", "evaluation")


def modules() -> Dict[str, ast.Module]:
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def strings(tree: ast.Module) -> List[str]:
    """String constants that are not docstrings (f-string pieces included)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_each_metric_executor_and_file_name_is_spelled_in_one_module():
    exact: Dict[str, Set[str]] = defaultdict(set)
    contains: Dict[str, Set[str]] = defaultdict(set)
    for name, tree in modules().items():
        for text in strings(tree):
            exact[text].add(name)
            for file_name in FILE_NAMES:
                if file_name in text:
                    contains[file_name].add(name)
    outside_cli = {key: {m for m in where if not m.startswith("cli/")} for key, where in {**exact, **contains}.items()}
    assert {m: sorted(outside_cli[m]) for m in METRIC_NAMES if len(outside_cli.get(m, ())) > 1} == {}
    assert {e: sorted(exact[e]) for e in EXECUTORS if len(exact[e]) > 1} == {}  # cli/ included: it reads the table
    assert {f: sorted(outside_cli[f]) for f in FILE_NAMES if len(outside_cli.get(f, ())) > 1} == {}


def test_no_long_module_or_class_in_the_study_evaluation_analysis_and_reporting_code():
    long = []
    for name, tree in modules().items():
        if name.split("/")[0] not in LAYERS:
            continue
        lines = len((PACKAGE / name).read_text().splitlines())
        if lines > 400:
            long.append(f"{name}: {lines} lines")
        long += [f"{name}:{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
                 if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200]
    assert long == []


def test_imports_go_one_way_along_the_data_path():
    backwards = []
    for name, tree in modules().items():
        layer = name.split("/")[0]
        if layer not in LAYERS:
            continue
        earlier = LAYERS[:LAYERS.index(layer)]
        for node in ast.walk(tree):
            targets = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            backwards += [f"{name} imports {t}" for t in targets
                          if t.split(".")[:2] in (["nnunet_archs", e] for e in earlier) or t.startswith(
                              "nnunet_archs.cli")]
    assert backwards == []
