"""Both notebooks, executed headless against the local real stack, return usable summaries.

Runs on the integration tier's ``deployed`` fixture (the local stack brought up and both example
pipelines deployed); skipped with the reason when that stack cannot run here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

import pytest

from datapipe_cdk import _toolchain
from datapipe_cdk.runtime.credentials import CredentialsError, load_credentials
from datapipe_cdk.runtime.manifest import Manifest, ManifestError, load_manifest
from datapipe_cdk.runtime.quality import RECONCILIATION_CHECKS
from datapipe_cdk.runtime.source import DATABASE_ERRORS, SourceDatabase
from integration import deploy
from datapipe_cdk.local import _process

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        return _process.port_open(host, int(port), timeout=2)
    except ValueError:
        return False


def _deployed_stack_or_skip(stack: str) -> Manifest:
    try:
        manifest = load_manifest(stack, root=ROOT)
    except ManifestError as exc:
        pytest.skip(f"stack {stack!r} has no usable manifest: {exc}")
    if "tfstate" not in manifest.origin and not os.environ.get("DATAPIPE_MANIFEST"):
        pytest.skip(f"stack {stack!r} is not deployed (read {manifest.origin}); run python -m integration.deploy apply")
    endpoints = {"Kafka": manifest.kafka.bootstrap_servers[0], "Connect": urlparse(manifest.connect_url).netloc}
    if manifest.bigquery.endpoint:
        endpoints["BigQuery"] = urlparse(manifest.bigquery.endpoint).netloc
    endpoints.update({f"source {s.name}": f"{s.host}:{s.port}" for s in manifest.sources})
    down = [f"{name} at {address}" for name, address in endpoints.items() if not _reachable(address)]
    if down:
        pytest.skip(f"local stack not up ({', '.join(down)} not reachable): run python -m datapipe_cdk.local up")
    try:
        credentials = load_credentials()
        for source in manifest.sources:
            SourceDatabase(source, credentials.database(source)).close()
    except CredentialsError as exc:
        pytest.skip(str(exc))
    except DATABASE_ERRORS as exc:
        pytest.skip(f"a source refuses the run directory's login ({exc}): is another run's server on its port?")
    return manifest


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stack", deploy.STACKS)
def test_notebooks_run_against_the_deployed_stack(deployed: object, stack: str) -> None:
    _deployed_stack_or_skip(stack)
    # Executed notebooks and figures are kept as the run's artifacts (the path is printed on failure).
    tmp_path = _toolchain.cache_root() / "artifacts" / f"test-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}" / stack
    status = _runner().main(["--stack", stack, "--markers", "20", "--rate", "2", "--artifacts", str(tmp_path)])
    for name in ("pipeline_latency", "data_quality"):
        assert (tmp_path / f"{name}.result.json").is_file(), f"{name} failed; see {tmp_path / name}.ipynb"

    latency = json.loads((tmp_path / "pipeline_latency.result.json").read_text())
    assert latency["latency_rows"] > 0, "latency table is empty"
    end_to_end = next(row for row in latency["summary"] if row["stage"] == "end_to_end")
    assert end_to_end["p99_s"] is not None and math.isfinite(end_to_end["p99_s"]), latency["sentence"]
    assert list(tmp_path.glob("latency_*.png")), "latency figures missing"

    quality = json.loads((tmp_path / "data_quality.result.json").read_text())
    checks = quality["checks"]
    reconciliation = [c for c in checks if c["check"] in (*RECONCILIATION_CHECKS, "deletes_propagate")]
    assert reconciliation, "no reconciliation check ran: does the stack expose a latest-state view?"
    failed = [f"{c['check']} {c['table']}: {c['detail']}" for c in checks if c["status"] == "fail"]
    assert not failed, "\n".join(failed)
    assert (tmp_path / "freshness.png").is_file() and (tmp_path / "null_rates.png").is_file()
    assert status == 0
