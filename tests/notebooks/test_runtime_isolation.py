"""The synth path and the runtime helpers stay apart: neither imports the other's dependencies; and the runtime works
from an installed package, without this repository checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("datapipe_cdk.runtime", "confluent_kafka", "pandas", "google.cloud.bigquery", "matplotlib", "pymysql", "psycopg")
RUNTIME = tuple(
    f"datapipe_cdk.runtime.{path.stem}"
    for path in sorted((ROOT / "datapipe_cdk" / "runtime").glob("*.py"))
    if path.stem != "__init__"
)
"""Every runtime module: none may load the CDK (notebooks and CLI checks stay light)."""


def test_import_datapipe_cdk_loads_no_runtime_dependency() -> None:
    probe = f"import sys; from datapipe_cdk import *; print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_runtime_helpers_do_not_start_cdktf() -> None:
    """Notebook kernels import the runtime only: no cdktf, no jsii, no Node.js child process."""
    probe = (
        f"import sys, importlib\nfor m in {RUNTIME!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cdktf', 'cdktn', 'jsii', 'constructs')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_runtime_reads_a_manifest_without_the_checkout(tmp_path: Path) -> None:
    """A copy of the package alone (as pip installs it: no cdktf.json, no stacks, no tools) in a folder that is
    no project: the notebooks' imports work and ``manifest_path`` finds the manifest."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "datapipe_cdk", site / "datapipe_cdk", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    work = tmp_path / "analyst"
    work.mkdir()
    manifest = work / "orders.manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "version": 2,
                "stack": "orders",
                "target": "production",
                "kafka": {"bootstrap_servers": ["broker:9093"]},
                "connect": {"url": "https://connect"},
                "bigquery": {"project": "acme"},
            }
        )
    )
    probe = (
        f"import sys, importlib\nfor m in {RUNTIME!r}: importlib.import_module(m)\n"
        "import datapipe_cdk\n"
        "from datapipe_cdk.runtime.manifest import load_manifest, find_project_dir\n"
        "m = load_manifest(None, manifest_path='orders.manifest.json')\n"
        "print(datapipe_cdk.__file__, m.stack, m.target, find_project_dir(),"
        " any(n.split('.')[0] in ('cdktf', 'cdktn', 'jsii') for n in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPIPE_")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    location, stack, target, project, cdktf_loaded = out.stdout.split()
    assert location.startswith(str(site)) and (stack, target) == ("orders", "production")
    assert project == "None" and cdktf_loaded == "False"
