"""The manifest is found by stack name: deployed state first, synthesized JSON otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.runtime.manifest import ColumnPolicy, ManifestError, load_manifest, parse_manifest

CONTRACT: dict[str, Any] = {
    "stack": "payments",
    "kafka": {"bootstrap_servers": ["127.0.0.1:19092"], "sasl_mechanism": "SCRAM-SHA-512",
              "security_protocol": "SASL_PLAINTEXT"},
    "connect": {"url": "http://127.0.0.1:18083"},
    "bigquery": {"project": "local-project", "location": "US", "endpoint": "http://127.0.0.1:19050"},
    "sources": [{"name": "payments-db", "engine": "mariadb", "host": "127.0.0.1", "port": 13306,
                 "database": "payments", "schema": None, "connector": "payments-db", "topic_prefix": "payments",
                 "tables": [{"name": "orders", "primary_key": ["id"], "topic": "payments.payments.orders",
                             "columns": [{"name": "email", "classification": "PII", "info_type": "EMAIL",
                                          "treatment": "masked"}]}]}],
    "sinks": [{"name": "payments-raw", "connector": "payments-raw", "dataset": "payments_raw", "holds_pii": False,
               "tables": [{"source_table": "orders", "topic": "payments.payments.orders", "table": "orders",
                           "primary_key": ["id"]}]}],
    "warehouses": [{"name": "finance", "dataset": "finance", "holds_pii": False,
                    "views": [{"name": "orders", "kind": "latest_state", "sink_dataset": "payments_raw",
                               "sink_table": "orders", "primary_key": ["id"]},
                              {"name": "daily_revenue", "kind": "custom", "sql": "${something}"}]}],
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real run directory, state or manifest override leaks into these tests."""
    monkeypatch.setenv("DATAPIPE_RUN_DIR", str(tmp_path / "run"))
    for name in ("DATAPIPE_STATE", "DATAPIPE_STATE_DIR", "DATAPIPE_MANIFEST", "DATAPIPE_BIGQUERY_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def _project(tmp_path: Path, stack: str = "payments") -> Path:
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "true"}))
    directory = tmp_path / "cdktf.out" / "stacks" / stack
    directory.mkdir(parents=True)
    return directory


def test_contract_example_parses_and_joins_source_sink_and_view() -> None:
    manifest = parse_manifest(CONTRACT)
    [pipe] = manifest.pipes()
    assert pipe.source_label == "payments-db.orders"
    assert pipe.changelog_label == "payments_raw.orders"
    assert pipe.label == "finance.orders"
    assert pipe.source_table.policy("email") == ColumnPolicy("email", "PII", "EMAIL", "masked")
    assert manifest.kafka.bootstrap_servers == ("127.0.0.1:19092",)


def test_bigquery_endpoint_override_is_applied_when_loading_not_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAPIPE_BIGQUERY_ENDPOINT", "http://127.0.0.1:29050")
    assert parse_manifest(CONTRACT).bigquery.endpoint == "http://127.0.0.1:19050"
    assert parse_manifest(CONTRACT, bigquery_endpoint="http://other").bigquery.endpoint == "http://other"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(CONTRACT))
    monkeypatch.setenv("DATAPIPE_MANIFEST", str(path))
    assert load_manifest("payments", root=tmp_path).bigquery.endpoint == "http://127.0.0.1:29050"


def test_a_table_exposed_twice_gives_one_pipe_per_view() -> None:
    raw = json.loads(json.dumps(CONTRACT))
    raw["warehouses"].append({"name": "risk", "dataset": "risk", "holds_pii": False,
                              "views": [{"name": "orders", "kind": "latest_state", "sink_dataset": "payments_raw",
                                         "sink_table": "orders", "primary_key": ["id"]}]})
    assert [p.label for p in parse_manifest(raw).pipes()] == ["finance.orders", "risk.orders"]


def test_reads_synthesized_output(tmp_path: Path) -> None:
    directory = _project(tmp_path)
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": CONTRACT}}}))
    manifest = load_manifest("payments", root=tmp_path)
    assert manifest.stack == "payments"
    assert "cdk.tf.json" in manifest.origin


def test_deployed_state_wins_over_synthesized_json(tmp_path: Path) -> None:
    directory = _project(tmp_path)
    synthesized = json.loads(json.dumps(CONTRACT))
    synthesized["bigquery"]["project"] = "${var.project}"
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": synthesized}}}))
    (directory / "terraform.payments.tfstate").write_text(
        json.dumps({"outputs": {"datapipe_manifest": {"value": CONTRACT, "type": ["object", {}]}}}))
    manifest = load_manifest("payments", root=tmp_path)
    assert manifest.bigquery.project == "local-project"
    assert "tfstate" in manifest.origin


def test_an_unresolved_expression_in_a_needed_field_says_deploy(tmp_path: Path) -> None:
    directory = _project(tmp_path)
    raw = json.loads(json.dumps(CONTRACT))
    raw["bigquery"]["project"] = "${var.project}"
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": raw}}}))
    with pytest.raises(ManifestError, match="deploy the stack"):
        load_manifest("payments", root=tmp_path)


def test_missing_stack_says_to_synth(tmp_path: Path) -> None:
    _project(tmp_path, "other")
    with pytest.raises(ManifestError, match="cdktf synth"):
        load_manifest("payments", root=tmp_path)


def test_env_manifest_file_is_used_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(CONTRACT))
    monkeypatch.setenv("DATAPIPE_MANIFEST", str(path))
    assert load_manifest("anything", root=tmp_path).origin == str(path)


def test_state_named_by_env_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path)
    elsewhere = tmp_path / "deployed"
    elsewhere.mkdir()
    (elsewhere / "terraform.tfstate").write_text(json.dumps({"outputs": {"datapipe_manifest": {"value": CONTRACT}}}))
    monkeypatch.setenv("DATAPIPE_STATE", str(elsewhere))
    assert load_manifest("payments", root=tmp_path).origin.startswith(str(elsewhere))


def test_local_profile_state_in_the_run_dir_is_found(tmp_path: Path) -> None:
    _project(tmp_path)
    state = tmp_path / "run" / "terraform" / "payments.tfstate"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"outputs": {"datapipe_manifest": {"value": CONTRACT}}}))
    assert load_manifest("payments", root=tmp_path).origin.startswith(str(state))


def test_empty_or_output_less_state_falls_back_to_synthesized_json(tmp_path: Path) -> None:
    directory = _project(tmp_path)
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": CONTRACT}}}))
    (directory / "terraform.payments.tfstate").write_text("")
    (directory / "terraform.tfstate").write_text(json.dumps({"outputs": {}}))
    assert "cdk.tf.json" in load_manifest("payments", root=tmp_path).origin


def test_local_profile_synth_wins_over_default_synth(tmp_path: Path) -> None:
    default = _project(tmp_path)
    local = tmp_path / "cdktf.out" / "local" / "stacks" / "payments"
    local.mkdir(parents=True)
    production = json.loads(json.dumps(CONTRACT))
    production["bigquery"]["endpoint"] = None
    (default / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": production}}}))
    (local / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": CONTRACT}}}))
    assert load_manifest("payments", root=tmp_path).bigquery.endpoint == "http://127.0.0.1:19050"
