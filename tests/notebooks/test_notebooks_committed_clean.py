"""Committed notebooks carry no outputs and declare the parameters the runner injects."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_both_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"pipeline_latency.ipynb", "data_quality.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them (Kernel > Restart & Clear Output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_declares_stack_markers_table_and_figures(path: Path) -> None:
    _, names = _runner().parameter_names(nbformat.read(path, as_version=4))
    assert {"stack_name", "markers", "figures_dir", "table"} <= names


def test_latency_parameters_cell_declares_rate_and_table() -> None:
    _, names = _runner().parameter_names(nbformat.read(ROOT / "notebooks" / "pipeline_latency.ipynb", as_version=4))
    assert {"rate_per_s", "table"} <= names


def test_injected_cell_follows_parameters_and_sets_only_declared_names() -> None:
    runner = _runner()
    notebook = nbformat.read(ROOT / "notebooks" / "pipeline_latency.ipynb", as_version=4)
    index, _ = runner.parameter_names(notebook)
    runner.inject(notebook, {"stack_name": "ledger", "markers": 3, "undeclared": 1})
    injected = notebook.cells[index + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "stack_name = 'ledger'" in injected.source and "markers = 3" in injected.source
    assert "undeclared" not in injected.source
