#!/usr/bin/env python3
"""Execute the analyst notebooks headless against a deployed stack and keep what they produced.

    .venv/bin/python tools/run_notebooks.py --stack payments [--markers 30] [--rate 2] [--only latency]

Parameters are injected papermill-style (a cell tagged ``injected-parameters`` after the cell tagged
``parameters``; only names that cell defines are injected). Executed copies, figures and each
notebook's ``<name>.result.json`` go to ``--artifacts`` (default
``${DATAPIPE_CACHE:-~/.cache/datapipe-cdk}/artifacts/<UTC timestamp>/``). Exits 1 when a notebook
fails, a quality check fails or the latency table is empty.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # datapipe_cdk from this checkout, installed or not

from datapipe_cdk import _toolchain  # noqa: E402
from datapipe_cdk.runtime.manifest import ManifestError, load_manifest  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOTEBOOKS = {"latency": ROOT / "notebooks" / "pipeline_latency.ipynb",
             "quality": ROOT / "notebooks" / "data_quality.ipynb"}


@dataclass(frozen=True)
class Execution:
    name: str
    executed: Path
    result: dict[str, Any] | None
    error: str | None
    seconds: float


def default_artifacts() -> Path:
    return _toolchain.cache_root() / "artifacts" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def kernel_env() -> dict[str, str]:
    """The kernel's environment: ours, plus this checkout on PYTHONPATH (datapipe_cdk importable even when
    not pip-installed) and DATAPIPE_PROJECT_DIR (manifests found from any working directory)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("DATAPIPE_PROJECT_DIR", str(ROOT))
    return env


def parameter_names(notebook: nbformat.NotebookNode) -> tuple[int, set[str]]:
    """Index of the cell tagged ``parameters`` and the names it assigns."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                     if isinstance(t, ast.Name)}
            return index, names
    raise SystemExit("notebook has no cell tagged 'parameters'; add the tag to its parameters cell")


def inject(notebook: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Insert an ``injected-parameters`` cell (only names the parameters cell defines) after it."""
    index, names = parameter_names(notebook)
    chosen = {k: v for k, v in parameters.items() if k in names}
    source = "# Injected by tools/run_notebooks.py\n" + "".join(f"{k} = {v!r}\n" for k, v in chosen.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, cell)
    return notebook


def execute(name: str, path: Path, parameters: dict[str, Any], out_dir: Path, cell_timeout_s: int) -> Execution:
    """Run one notebook with ``figures_dir`` = ``out_dir``; the executed copy is saved even when it fails."""
    notebook = inject(nbformat.read(path, as_version=4), {**parameters, "figures_dir": str(out_dir)})
    client = NotebookClient(notebook, timeout=cell_timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    executed = out_dir / path.name
    error = None
    began = time.monotonic()
    print(f"[notebooks] {name}: executing {path.relative_to(ROOT)} ...", flush=True)
    try:
        client.execute(env=kernel_env())
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        text = ANSI.sub("", str(exc)).strip()
        error = text.splitlines()[-1] if text else type(exc).__name__
    finally:
        nbformat.write(notebook, executed)
    seconds = time.monotonic() - began
    result_file = out_dir / f"{path.stem}.result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() and error is None else None
    print(f"[notebooks] {name}: {'FAILED: ' + error if error else 'done'} in {seconds:.1f}s -> {executed}", flush=True)
    return Execution(name, executed, result, error, seconds)


def report(executions: list[Execution]) -> int:
    """Print the percentiles and the quality summary; the exit status of the run."""
    status = 0
    for run in executions:
        if run.error or run.result is None:
            print(f"\n{run.name}: no result ({run.error or 'result JSON missing'}); see {run.executed}")
            status = 1
            continue
        if run.name == "latency":
            print(f"\nLatency of {run.result['table']} ({run.result['markers']} markers), seconds:")
            print(f"  {'stage':<20}{'samples':>8}{'missing':>8}{'p50':>8}{'p95':>8}{'p99':>8}")
            for row in run.result["summary"]:
                cells = [row.get(k) for k in ("p50_s", "p95_s", "p99_s")]
                shown = "".join(f"{v:>8.2f}" if isinstance(v, int | float) else f"{'-':>8}" for v in cells)
                print(f"  {row['stage']:<20}{row['samples']:>8}{row['missing']:>8}{shown}")
            print(f"  {run.result['sentence']}")
            if not run.result["latency_rows"]:
                print("  latency table is empty: no marker was observed at any stage")
                status = 1
        else:
            print("\nData quality:")
            for check in run.result["checks"]:
                print(f"  {check['status'].upper():<5} {check['check']:<26} {check['table']:<28} {check['detail']}")
            if not run.result["passed"]:
                status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="payments", help="stack name (default: payments)")
    parser.add_argument("--markers", type=int, default=30, help="latency markers (quality: rows deleted)")
    parser.add_argument("--rate", type=float, default=2.0, help="markers per second")
    parser.add_argument("--table", default=None, help="source table to probe (default: first exposed)")
    parser.add_argument("--artifacts", type=Path, default=None, help="output directory")
    parser.add_argument("--only", choices=sorted(NOTEBOOKS), action="append", help="run only this notebook")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    artifacts = (args.artifacts or default_artifacts()).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        manifest = load_manifest(args.stack, root=ROOT)
    except ManifestError as exc:
        print(f"[notebooks] {exc}", file=sys.stderr)
        return 2
    print(f"[notebooks] stack {args.stack!r} from {manifest.origin}", flush=True)
    parameters = {"stack_name": args.stack, "markers": args.markers, "rate_per_s": args.rate, "table": args.table}
    quality_parameters = {**parameters, "markers": min(args.markers, 10)}
    executions = []
    for name in args.only or ["latency", "quality"]:
        chosen = quality_parameters if name == "quality" else parameters
        executions.append(execute(name, NOTEBOOKS[name], chosen, artifacts, args.cell_timeout))
    print(f"\n[notebooks] artifacts (executed notebooks, PNG figures, result JSON): {artifacts}")
    return report(executions)


if __name__ == "__main__":
    sys.exit(main())
