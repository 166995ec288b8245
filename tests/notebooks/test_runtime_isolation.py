"""The synth path never pays for the runtime helpers: ``import datapipe_cdk`` loads none of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("datapipe_cdk.runtime", "confluent_kafka", "pandas", "google.cloud.bigquery", "matplotlib", "pymysql", "psycopg")


def test_import_datapipe_cdk_loads_no_runtime_dependency() -> None:
    probe = f"import sys, datapipe_cdk; print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
