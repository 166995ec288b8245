#!/usr/bin/env python3
"""Dump the pinned providers' schemas, trimmed to what datapipe-cdk emits.

Runs ``tofu init`` offline against the toolchain mirror in a temporary directory,
then ``tofu providers schema -json``, keeps the provider configuration schemas and
the resource types in RESOURCE_TYPES, and writes tests/data/provider_schemas.json
(sorted keys, indented: stable diffs). Needs ``make toolchain`` first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    from datapipe_cdk import _toolchain as tc
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from datapipe_cdk import _toolchain as tc

REPO = Path(__file__).resolve().parent.parent

# Every resource type datapipe-cdk synthesizes; add new ones here.
RESOURCE_TYPES: tuple[str, ...] = (
    "kafka_topic",
    "kafka_acl",
    "kafka_quota",
    "kafka_user_scram_credential",
    "kafka-connect_connector",
    "google_bigquery_dataset",
    "google_bigquery_dataset_access",
    "google_bigquery_dataset_iam_member",
    "google_bigquery_table",
    "google_service_account",
    "google_service_account_key",
    "google_project_iam_member",
    "google_data_loss_prevention_inspect_template",
    "google_data_loss_prevention_job_trigger",
    "google_bigquery_data_transfer_config",
    "google_logging_metric",
    "google_monitoring_alert_policy",
)
DEFAULT_OUTPUT = REPO / "tests" / "data" / "provider_schemas.json"


def _tofu(args: list[str], cwd: Path) -> str:
    cmd = [str(tc.tofu_path()), *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=tc.toolchain_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise SystemExit(f"error: `tofu {' '.join(args)}` failed: {tail}")
    return proc.stdout


def fetch_schemas() -> dict[str, Any]:
    """Full ``tofu providers schema -json`` output for the pinned providers."""
    config = {"terraform": {"required_providers": tc.required_providers()}}
    with tempfile.TemporaryDirectory(prefix="datapipe-schemas-") as tmp:
        work = Path(tmp)
        (work / "main.tf.json").write_text(json.dumps(config, indent=2))
        _tofu(["init", "-input=false", "-no-color", "-backend=false"], work)
        result: dict[str, Any] = json.loads(_tofu(["providers", "schema", "-json"], work))
    return result


def trim(full: dict[str, Any], resource_types: tuple[str, ...]) -> dict[str, Any]:
    """Keep provider config schemas and the wanted resource schemas only."""
    providers: dict[str, Any] = {}
    found: set[str] = set()
    for address, schema in full["provider_schemas"].items():
        resources = {name: body for name, body in schema.get("resource_schemas", {}).items() if name in resource_types}
        found.update(resources)
        providers[address] = {
            "provider": schema["provider"],
            "resource_schemas": resources,
        }
    missing = sorted(set(resource_types) - found)
    if missing:
        raise SystemExit(f"error: pinned providers have no resource type(s) {', '.join(missing)}")
    return {
        "format_version": full["format_version"],
        "provider_schemas": providers,
        "provider_versions": {p.address(): p.version for p in tc.PROVIDERS},
        "tofu_version": tc.TOFU_VERSION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        tc.check()
    except tc.ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    trimmed = trim(fetch_schemas(), RESOURCE_TYPES)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(trimmed, indent=2, sort_keys=True) + "\n")
    count = sum(len(p["resource_schemas"]) for p in trimmed["provider_schemas"].values())
    print(f"wrote {args.output} ({count} resource types, {len(trimmed['provider_schemas'])} providers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
