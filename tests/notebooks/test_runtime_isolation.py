"""The synth path and the runtime helpers stay apart: neither imports the other's dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("datapipe_cdk.runtime", "confluent_kafka", "pandas", "google.cloud.bigquery", "matplotlib", "pymysql", "psycopg")


def test_import_datapipe_cdk_loads_no_runtime_dependency() -> None:
    probe = f"import sys; from datapipe_cdk import *; print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_runtime_helpers_do_not_start_cdktf() -> None:
    """Notebook kernels import the runtime only: no cdktf, no jsii, no Node.js child process."""
    probe = (
        "import sys, datapipe_cdk.runtime.manifest, datapipe_cdk.runtime.quality, datapipe_cdk.runtime.latency\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cdktf', 'jsii', 'constructs')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
