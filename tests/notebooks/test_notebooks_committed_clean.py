"""Committed notebooks carry no outputs and declare the parameters the runner injects."""

from __future__ import annotations

import importlib.util
import os
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
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_declares_where_the_manifest_is_and_the_write_opt_in(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    index, names = _runner().parameter_names(notebook)
    assert {"manifest_path", "synth_dir", "write_probe_rows"} <= names
    namespace: dict[str, object] = {}
    exec(notebook.cells[index].source, namespace)  # the committed defaults
    assert namespace["write_probe_rows"] is None  # None = decided by the manifest's target (local only)
    assert namespace["manifest_path"] is None and namespace["synth_dir"] is None


CREDENTIAL_VARIABLES = (
    "DATAPIPE_KAFKA_USERNAME",
    "DATAPIPE_KAFKA_PASSWORD",
    "DATAPIPE_KAFKA_PASSWORD_FILE",
    "DATAPIPE_MARIADB_USER",
    "DATAPIPE_MYSQL_USER",
    "DATAPIPE_POSTGRESQL_USER",
    "DATAPIPE_<ENGINE>_PASSWORD",
    "DATAPIPE_<ENGINE>_PASSWORD_FILE",
    "DATAPIPE_BIGQUERY_ENDPOINT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DATAPIPE_RUN_DIR",
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_markdown_cell_before_the_parameters_documents_credentials_and_read_only(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    index, _ = _runner().parameter_names(notebook)
    text = "\n".join(c.source for c in notebook.cells[:index] if c.cell_type == "markdown")
    missing = [name for name in CREDENTIAL_VARIABLES if name not in text]
    assert not missing, f"{path.name}: the notes before the parameters do not mention {missing}"
    assert "Read-only unless you opt in" in text and "write_probe_rows = True" in text and "--write-probe-rows" in text
    assert "manifest_path" in text and "synth_dir" in text


def test_the_documented_variables_are_the_ones_the_runtime_reads() -> None:
    source = (ROOT / "datapipe_cdk" / "runtime" / "credentials.py").read_text()
    for prefix in ("DATAPIPE_KAFKA", "DATAPIPE_{engine.upper()}", "USERNAME", "_PASSWORD_FILE", "_PASSWORD"):
        assert prefix in source
    assert "DATAPIPE_BIGQUERY_ENDPOINT" in (ROOT / "datapipe_cdk" / "runtime" / "manifest.py").read_text()
    readme = (ROOT / "notebooks" / "README.md").read_text()
    assert not [name for name in CREDENTIAL_VARIABLES if name not in readme]
    assert "read-only" in readme.lower() and "--write-probe-rows" in readme


def test_runner_flags_become_notebook_parameters(tmp_path: Path) -> None:
    runner = _runner()
    args = runner.parse_args(
        ["--manifest", str(tmp_path / "m.json"), "--synth-dir", "rel/cdktf.out", "--write-probe-rows", "--lookback", "600"]
    )
    parameters = runner.notebook_parameters(args)
    assert parameters["manifest_path"] == str(tmp_path / "m.json")
    assert Path(parameters["synth_dir"]).is_absolute()  # the kernel runs in the notebooks' folder
    assert parameters["write_probe_rows"] is True and parameters["lookback_s"] == 600.0
    assert runner.notebook_parameters(runner.parse_args(["--read-only"]))["write_probe_rows"] is False
    default = runner.notebook_parameters(runner.parse_args([]))
    assert default["write_probe_rows"] is None and default["manifest_path"] is None and default["synth_dir"] is None
    with pytest.raises(SystemExit):
        runner.parse_args(["--read-only", "--write-probe-rows"])


def test_runner_injects_the_new_parameters_into_both_notebooks() -> None:
    runner = _runner()
    parameters = runner.notebook_parameters(runner.parse_args(["--manifest", "/m.json", "--read-only"]))
    for path in NOTEBOOKS:
        notebook = runner.inject(nbformat.read(path, as_version=4), parameters)
        index, _ = runner.parameter_names(notebook)
        injected = notebook.cells[index + 1].source
        assert "manifest_path = '/m.json'" in injected and "write_probe_rows = False" in injected
        assert "synth_dir = None" in injected


def test_kernel_env_adds_the_checkout_and_the_runners_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner = _runner()
    monkeypatch.delenv("DATAPIPE_PROJECT_DIR", raising=False)
    env = runner.kernel_env(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # running from this checkout
    assert env["DATAPIPE_PROJECT_DIR"] == str(tmp_path)
    assert "DATAPIPE_PROJECT_DIR" not in runner.kernel_env(None)  # --manifest / --synth-dir: no project needed
    monkeypatch.setattr(runner, "CHECKOUT", False)  # an installed datapipe-cdk: nothing added
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert runner.kernel_env(None)["PYTHONPATH"] == "/elsewhere"
