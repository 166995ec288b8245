"""Both notebooks, executed headless against the local real stack, return usable summaries: with probe rows
(explicitly opted in) and read-only (nothing written to a source: row counts and changelog event counts unchanged).

Runs on the integration tier's ``deployed`` fixture (the local stack brought up and both example
pipelines deployed); skipped with the reason when that stack cannot run here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

import pytest

from datapipe_cdk.local import _process
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.runtime.credentials import Credentials, load_credentials
from datapipe_cdk.runtime.manifest import Manifest, load_manifest
from datapipe_cdk.runtime.probe_rows import ProbeRows, choose_pipe, warehouse_view
from datapipe_cdk.runtime.quality import RECONCILIATION_CHECKS
from datapipe_cdk.runtime.source import SourceDatabase
from datapipe_cdk.runtime.warehouse import WarehouseClient
from integration.conftest import STACKS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        return _process.port_open(host, int(port), timeout=2)
    except ValueError:
        return False


def _deployed_stack_or_skip(stack: str) -> Manifest:
    """The stack's deployed manifest; the ``deployed`` fixture guarantees it, so anything missing fails."""
    manifest = load_manifest(stack, root=ROOT)
    assert "manifests" in manifest.origin, f"stack {stack!r} was not read from its deployed manifest: {manifest.origin}"
    assert manifest.target == "local", manifest.origin
    endpoints = {"Kafka": manifest.kafka.bootstrap_servers[0], "Connect": urlparse(manifest.connect_url).netloc}
    if manifest.bigquery.endpoint:
        endpoints["BigQuery"] = urlparse(manifest.bigquery.endpoint).netloc
    endpoints.update({f"source {s.name}": f"{s.host}:{s.port}" for s in manifest.sources})
    down = [f"{name} at {address}" for name, address in endpoints.items() if not _reachable(address)]
    assert not down, f"local stack not up: {', '.join(down)} not reachable"
    credentials = load_credentials()
    for source in manifest.sources:
        SourceDatabase(source, credentials.database(source)).close()
    return manifest


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _artifacts(stack: str, mode: str) -> Path:
    """Executed notebooks and figures are kept as the run's artifacts in the run directory (kept until the next
    ``datapipe local reset``; the path is printed on failure), where the secret scan of test_pipeline reads them."""
    return StackConfig().run_dir / "artifacts" / f"{mode}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}" / stack


@pytest.mark.parametrize("stack", STACKS)
def test_notebooks_run_against_the_deployed_stack(deployed: object, stack: str) -> None:
    _deployed_stack_or_skip(stack)
    tmp_path = _artifacts(stack, "probe")
    # The local stack is ours: opt in explicitly, so the markers run whatever target the manifest records.
    status = _runner().main(
        ["--stack", stack, "--markers", "20", "--rate", "2", "--write-probe-rows", "--artifacts", str(tmp_path)]
    )
    for name in ("pipeline_latency", "data_quality"):
        assert (tmp_path / f"{name}.result.json").is_file(), f"{name} failed; see {tmp_path / name}.ipynb"

    latency = json.loads((tmp_path / "pipeline_latency.result.json").read_text())
    assert latency["mode"] == "probe" and latency["write_probe_rows"] is True
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


def _written_state(manifest: Manifest, credentials: Credentials) -> dict[str, int]:
    """Row count of every captured source table and event count of every changelog table: any write into a
    source changes one of them (a changelog event per insert, update or delete)."""
    counts: dict[str, int] = {}
    for source in manifest.sources:
        with SourceDatabase(source, credentials.database(source)) as db:  # read-only session
            counts.update({f"{source.name}.{t.name}": db.count(t.name) for t in source.tables})
    warehouse = WarehouseClient(manifest.bigquery)
    for sink in manifest.sinks:
        counts.update({f"{sink.dataset}.{t.table}": warehouse.count(sink.dataset, t.table) for t in sink.tables})
    return counts


def _existing_traffic(manifest: Manifest, credentials: Credentials, timeout_s: float = 90.0) -> None:
    """A few committed changes for read-only mode to measure (written by the test, opted in), waited for until
    the changelog holds their deletes."""
    pipe = choose_pipe(manifest)
    with SourceDatabase(pipe.source, credentials.database(pipe.source), writable=True) as db:
        rows = ProbeRows(db, pipe, target=manifest.target, write_probe_rows=True)
        keys = [rows.insert()[0] for _ in range(3)]
        rows.delete(keys)
        view = warehouse_view(WarehouseClient(manifest.bigquery), rows)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deleted = {str(e["k"]) for e in view.changelog_events(keys) if e["op"] == "d"}
        if deleted >= {str(k) for k in keys}:
            return
        time.sleep(1.0)
    pytest.fail(f"the deletes of {keys} did not reach {pipe.changelog_label} within {timeout_s:.0f}s")


@pytest.mark.parametrize("stack", STACKS)
def test_read_only_notebooks_measure_without_writing(deployed: object, stack: str) -> None:
    manifest = _deployed_stack_or_skip(stack)
    credentials = load_credentials()
    _existing_traffic(manifest, credentials)
    before = _written_state(manifest, credentials)
    tmp_path = _artifacts(stack, "read-only")
    status = _runner().main(["--stack", stack, "--read-only", "--lookback", "900", "--artifacts", str(tmp_path)])
    time.sleep(10)  # a write by the notebooks would reach the changelog by now
    assert _written_state(manifest, credentials) == before, "a read-only run changed a source"
    for name in ("pipeline_latency", "data_quality"):
        assert (tmp_path / f"{name}.result.json").is_file(), f"{name} failed; see {tmp_path / name}.ipynb"

    latency = json.loads((tmp_path / "pipeline_latency.result.json").read_text())
    assert latency["mode"] == "read_only" and latency["write_probe_rows"] is False
    assert latency["latency_rows"] > 0, f"nothing measured read-only: {latency['notes']}"
    quality = json.loads((tmp_path / "data_quality.result.json").read_text())
    assert quality["write_probe_rows"] is False
    [deletes] = [c for c in quality["checks"] if c["check"] == "deletes_propagate"]
    assert deletes["status"] == "skip", deletes
    failed = [f"{c['check']} {c['table']}: {c['detail']}" for c in quality["checks"] if c["status"] == "fail"]
    assert not failed, "\n".join(failed)
    assert status == 0
