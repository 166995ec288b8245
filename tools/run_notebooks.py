#!/usr/bin/env python3
"""Execute the analyst notebooks headless against a deployed stack and keep what they produced.

    python tools/run_notebooks.py --stack payments [--markers 30] [--rate 2] [--only latency]
    python tools/run_notebooks.py --manifest ~/app/payments.manifest.json      # any app, any folder
    python tools/run_notebooks.py --stack orders --synth-dir ~/app/cdktf.out   # its synth output folder

The manifest is ``--manifest`` (its JSON, ``tofu output -json`` saved to a file, a Terraform state or a
``cdk.tf.json``), else looked up by ``--stack`` under ``--synth-dir``, else as the notebooks do (the
project holding ``cdktf.json`` at or above the working directory, ``$DATAPIPE_PROJECT_DIR``, this
checkout). Probe rows are written into a source only on the local stack (manifest ``target`` ``local``)
unless ``--write-probe-rows`` opts in; ``--read-only`` never writes, even locally.

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
CHECKOUT = (ROOT / "datapipe_cdk" / "__init__.py").is_file()
"""Whether this script runs from a datapipe-cdk checkout (else datapipe_cdk must be installed)."""
if CHECKOUT:
    sys.path.insert(0, str(ROOT))  # datapipe_cdk from this checkout, installed or not

from datapipe_cdk import _toolchain  # noqa: E402
from datapipe_cdk.runtime.manifest import ManifestError, find_project_dir, load_manifest  # noqa: E402
from datapipe_cdk.runtime.writes import mode_statement  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOTEBOOKS = {"latency": ROOT / "notebooks" / "pipeline_latency.ipynb", "quality": ROOT / "notebooks" / "data_quality.ipynb"}


@dataclass(frozen=True)
class Execution:
    name: str
    executed: Path
    result: dict[str, Any] | None
    error: str | None
    seconds: float


def default_artifacts() -> Path:
    return _toolchain.cache_root() / "artifacts" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def kernel_env(project: Path | None = None) -> dict[str, str]:
    """The kernel's environment: ours, plus this checkout on PYTHONPATH when running from one (datapipe_cdk
    importable even when not pip-installed; an installed datapipe-cdk is used otherwise) and
    DATAPIPE_PROJECT_DIR = ``project`` (the project the runner read the manifest from), so the kernel, which
    runs in the notebooks' folder, looks the manifest up where the runner did."""
    env = dict(os.environ)
    if CHECKOUT:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if project is not None:
        env.setdefault("DATAPIPE_PROJECT_DIR", str(project))
    return env


def project_dir() -> Path | None:
    """Where manifests are looked up by stack name: ``$DATAPIPE_PROJECT_DIR``, the project holding
    ``cdktf.json`` at or above the working directory, else this checkout (None when there is none)."""
    found = find_project_dir()
    if found is None and (ROOT / "cdktf.json").is_file():
        found = ROOT
    return found


def parameter_names(notebook: nbformat.NotebookNode) -> tuple[int, set[str]]:
    """Index of the cell tagged ``parameters`` and the names it assigns."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
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


def execute(
    name: str, path: Path, parameters: dict[str, Any], out_dir: Path, cell_timeout_s: int, project: Path | None = None
) -> Execution:
    """Run one notebook with ``figures_dir`` = ``out_dir``; the executed copy is saved even when it fails."""
    notebook = inject(nbformat.read(path, as_version=4), {**parameters, "figures_dir": str(out_dir)})
    client = NotebookClient(
        notebook, timeout=cell_timeout_s, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    executed = out_dir / path.name
    error = None
    began = time.monotonic()
    print(f"[notebooks] {name}: executing {path} ...", flush=True)
    try:
        client.execute(env=kernel_env(project))
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
            read_only = run.result.get("mode") == "read_only"
            count = run.result["markers"]
            counted = f"{count} changes that already flowed, read-only" if read_only else f"{count} markers"
            print(f"\nLatency of {run.result['table']} ({counted}), seconds:")
            print(f"  {'stage':<20}{'samples':>8}{'missing':>8}{'p50':>8}{'p95':>8}{'p99':>8}")
            for row in run.result["summary"]:
                cells = [row.get(k) for k in ("p50_s", "p95_s", "p99_s")]
                shown = "".join(f"{v:>8.2f}" if isinstance(v, int | float) else f"{'-':>8}" for v in cells)
                print(f"  {row['stage']:<20}{row['samples']:>8}{row['missing']:>8}{shown}")
            print(f"  {run.result['sentence']}")
            for note in run.result.get("notes") or []:
                print(f"  note: {note}")
            if not run.result["latency_rows"]:
                what = "no change within the lookback window was read" if read_only else "no marker was observed at any stage"
                print(f"  latency table is empty: {what}")
                status = 1
        else:
            print(f"\nData quality ({'read-only' if not run.result.get('write_probe_rows') else 'probe rows written'}):")
            for check in run.result["checks"]:
                print(f"  {check['status'].upper():<5} {check['check']:<26} {check['table']:<28} {check['detail']}")
            if not run.result["passed"]:
                status = 1
    return status


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="payments", help="stack name (default: payments; not needed with --manifest)")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="the stack's manifest file: its JSON, `tofu output -json` saved to a file, a Terraform "
        "state or a cdk.tf.json (overrides DATAPIPE_MANIFEST)",
    )
    parser.add_argument(
        "--synth-dir",
        type=Path,
        default=None,
        help="your app's synth output folder (e.g. ~/app/cdktf.out, or one stack's directory) to look "
        "the stack up in instead of this project's",
    )
    writes = parser.add_mutually_exclusive_group()
    writes.add_argument(
        "--write-probe-rows",
        dest="write_probe_rows",
        action="store_const",
        const=True,
        default=None,
        help="opt in to writing probe rows into the source database (needed for any target but the local stack)",
    )
    writes.add_argument(
        "--read-only",
        dest="write_probe_rows",
        action="store_const",
        const=False,
        help="never write into a source database, not even on the local stack",
    )
    parser.add_argument("--markers", type=int, default=30, help="latency markers (quality: rows deleted)")
    parser.add_argument("--rate", type=float, default=2.0, help="markers per second")
    parser.add_argument(
        "--lookback", type=float, default=3600.0, help="read-only latency: seconds of past changes to read (default 3600)"
    )
    parser.add_argument("--table", default=None, help="source table to measure (default: first exposed)")
    parser.add_argument("--artifacts", type=Path, default=None, help="output directory")
    parser.add_argument("--only", choices=sorted(NOTEBOOKS), action="append", help="run only this notebook")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds per cell")
    return parser.parse_args(argv)


def notebook_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters both notebooks get (paths absolute: the kernel runs in the notebooks' folder)."""
    return {
        "stack_name": args.stack,
        "manifest_path": str(args.manifest.expanduser().resolve()) if args.manifest else None,
        "synth_dir": str(args.synth_dir.expanduser().resolve()) if args.synth_dir else None,
        "write_probe_rows": args.write_probe_rows,
        "markers": args.markers,
        "rate_per_s": args.rate,
        "lookback_s": args.lookback,
        "table": args.table,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    artifacts = (args.artifacts or default_artifacts()).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(args)
    project = project_dir() if args.manifest is None and args.synth_dir is None else None
    try:
        manifest = load_manifest(
            args.stack, root=project, manifest_path=parameters["manifest_path"], synth_dir=parameters["synth_dir"]
        )
    except ManifestError as exc:
        print(f"[notebooks] {exc}", file=sys.stderr)
        return 2
    parameters["stack_name"] = manifest.stack
    print(f"[notebooks] stack {manifest.stack!r} (target {manifest.target}) from {manifest.origin}", flush=True)
    print(f"[notebooks] {mode_statement(manifest.target, args.write_probe_rows)}", flush=True)
    quality_parameters = {**parameters, "markers": min(args.markers, 10)}
    executions = []
    for name in args.only or ["latency", "quality"]:
        chosen = quality_parameters if name == "quality" else parameters
        executions.append(execute(name, NOTEBOOKS[name], chosen, artifacts, args.cell_timeout, project))
    print(f"\n[notebooks] artifacts (executed notebooks, PNG figures, result JSON): {artifacts}")
    return report(executions)


if __name__ == "__main__":
    sys.exit(main())
