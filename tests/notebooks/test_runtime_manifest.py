"""The manifest is found by stack name (deployed state first, synthesized JSON otherwise), or read from the file
or synth output folder a notebook is given; the classes are ``datapipe_cdk.manifest``'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import datapipe_cdk.manifest as core
from datapipe_cdk.runtime import manifest as runtime_manifest
from datapipe_cdk.runtime.manifest import ColumnPolicy, Manifest, ManifestError, load_manifest

CONTRACT: dict[str, Any] = {
    "stack": "payments",
    "kafka": {"bootstrap_servers": ["127.0.0.1:19092"], "sasl_mechanism": "SCRAM-SHA-512", "security_protocol": "SASL_PLAINTEXT"},
    "connect": {"url": "http://127.0.0.1:18083"},
    "bigquery": {"project": "local-project", "location": "US", "endpoint": "http://127.0.0.1:19050"},
    "sources": [
        {
            "name": "payments-db",
            "engine": "mariadb",
            "host": "127.0.0.1",
            "port": 13306,
            "database": "payments",
            "schema": None,
            "connector": "payments-db",
            "topic_prefix": "payments",
            "tables": [
                {
                    "name": "orders",
                    "primary_key": ["id"],
                    "topic": "payments.payments.orders",
                    "columns": [{"name": "email", "classification": "PII", "info_type": "EMAIL", "treatment": "masked"}],
                }
            ],
        }
    ],
    "sinks": [
        {
            "name": "payments-raw",
            "connector": "payments-raw",
            "dataset": "payments_raw",
            "holds_pii": False,
            "tables": [{"source_table": "orders", "topic": "payments.payments.orders", "table": "orders", "primary_key": ["id"]}],
        }
    ],
    "warehouses": [
        {
            "name": "finance",
            "dataset": "finance",
            "holds_pii": False,
            "views": [
                {
                    "name": "orders",
                    "kind": "latest_state",
                    "sink_dataset": "payments_raw",
                    "sink_table": "orders",
                    "primary_key": ["id"],
                },
                {"name": "daily_revenue", "kind": "custom", "sql": "${something}"},
            ],
        }
    ],
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real run directory, state or manifest override leaks into these tests."""
    monkeypatch.setenv("DATAPIPE_RUN_DIR", str(tmp_path / "run"))
    for name in (
        "DATAPIPE_STATE",
        "DATAPIPE_STATE_DIR",
        "DATAPIPE_MANIFEST",
        "DATAPIPE_BIGQUERY_ENDPOINT",
        "DATAPIPE_PROJECT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


def _project(tmp_path: Path, stack: str = "payments") -> Path:
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "true"}))
    directory = tmp_path / "cdktf.out" / "stacks" / stack
    directory.mkdir(parents=True)
    return directory


def test_contract_example_parses_and_joins_source_sink_and_view() -> None:
    manifest = Manifest.from_dict(CONTRACT)
    [pipe] = manifest.pipes()
    assert pipe.source_label == "payments-db.orders"
    assert pipe.changelog_label == "payments_raw.orders"
    assert pipe.label == "finance.orders"
    assert pipe.source_table.policy("email") == ColumnPolicy("email", classification="PII", info_type="EMAIL", treatment="masked")
    assert manifest.kafka.bootstrap_servers == ("127.0.0.1:19092",)


def test_bigquery_endpoint_override_is_applied_when_loading_not_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPIPE_BIGQUERY_ENDPOINT", "http://127.0.0.1:29050")
    assert Manifest.from_dict(CONTRACT).bigquery.endpoint == "http://127.0.0.1:19050"
    assert Manifest.from_dict(CONTRACT, bigquery_endpoint="http://other").bigquery.endpoint == "http://other"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(CONTRACT))
    monkeypatch.setenv("DATAPIPE_MANIFEST", str(path))
    assert load_manifest("payments", root=tmp_path).bigquery.endpoint == "http://127.0.0.1:29050"


def test_a_table_exposed_twice_gives_one_pipe_per_view() -> None:
    raw = json.loads(json.dumps(CONTRACT))
    raw["warehouses"].append(
        {
            "name": "risk",
            "dataset": "risk",
            "holds_pii": False,
            "views": [
                {
                    "name": "orders",
                    "kind": "latest_state",
                    "sink_dataset": "payments_raw",
                    "sink_table": "orders",
                    "primary_key": ["id"],
                }
            ],
        }
    )
    assert [p.label for p in Manifest.from_dict(raw).pipes()] == ["finance.orders", "risk.orders"]


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
        json.dumps({"outputs": {"datapipe_manifest": {"value": CONTRACT, "type": ["object", {}]}}})
    )
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


def test_the_runtime_reads_with_the_single_manifest_definition(tmp_path: Path) -> None:
    """No second copy of the dataclasses: the runtime's names are ``datapipe_cdk.manifest``'s."""
    for name in (
        "Manifest",
        "ManifestError",
        "Source",
        "SourceTable",
        "ColumnPolicy",
        "Sink",
        "SinkTable",
        "View",
        "WarehouseSpec",
        "KafkaEndpoint",
        "BigQueryEndpoint",
        "Pipe",
    ):
        assert getattr(runtime_manifest, name) is getattr(core, name), name
    assert not hasattr(runtime_manifest, "parse_manifest")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(CONTRACT))
    manifest = load_manifest(None, manifest_path=path)
    assert isinstance(manifest, core.Manifest) and manifest.target == "production"  # the default when absent
    local = {**CONTRACT, "target": "local", "version": 2}
    path.write_text(json.dumps(local))
    assert load_manifest(None, manifest_path=path).target == "local"


def test_a_manifest_newer_than_the_library_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**CONTRACT, "version": core.VERSION + 1}))
    with pytest.raises(ManifestError, match="upgrade datapipe-cdk"):
        load_manifest(None, manifest_path=path)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (CONTRACT, ""),  # tofu output -json datapipe_manifest > file
        ({"datapipe_manifest": {"sensitive": False, "type": ["object", {}], "value": CONTRACT}}, "(datapipe_manifest)"),
        ({"version": 4, "outputs": {"datapipe_manifest": {"value": CONTRACT}}}, "(outputs.datapipe_manifest)"),
        ({"output": {"payments_datapipe_manifest": {"value": CONTRACT}}}, "(output.datapipe_manifest)"),
    ],
    ids=["manifest", "tofu-output", "state", "cdk.tf.json"],
)
def test_manifest_path_reads_any_file_that_holds_the_manifest(tmp_path: Path, document: dict[str, Any], where: str) -> None:
    path = tmp_path / "elsewhere" / "saved.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    manifest = load_manifest("ignored-a-file-names-its-stack", manifest_path=path)
    assert manifest.stack == "payments" and manifest.origin == f"{path} {where}".strip()


def test_manifest_path_wins_over_the_environment_and_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _project(tmp_path)
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": CONTRACT}}}))
    other = json.loads(json.dumps(CONTRACT))
    other["stack"] = "orders"
    env_file, given = tmp_path / "env.json", tmp_path / "given.json"
    env_file.write_text(json.dumps(CONTRACT))
    given.write_text(json.dumps(other))
    monkeypatch.setenv("DATAPIPE_MANIFEST", str(env_file))
    assert load_manifest("payments", root=tmp_path, manifest_path=given).stack == "orders"


def test_a_missing_manifest_file_says_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="tofu output -json datapipe_manifest"):
        load_manifest(None, manifest_path=tmp_path / "absent.json")


def test_a_synthesized_file_with_an_unresolved_manifest_says_deploy(tmp_path: Path) -> None:
    path = tmp_path / "cdk.tf.json"
    path.write_text(json.dumps({"output": {"datapipe_manifest": {"value": "${jsonencode(local.x)}"}}}))
    with pytest.raises(ManifestError, match="deploy the"):
        load_manifest(None, manifest_path=path)


def _app(tmp_path: Path, stack: str = "orders", local: bool = False) -> Path:
    """A user's app elsewhere: its own synth output folder, no cdktf.json next to the working directory."""
    synth = tmp_path / "app" / "cdktf.out"
    directory = synth / ("local/stacks" if local else "stacks") / stack
    directory.mkdir(parents=True)
    raw = json.loads(json.dumps(CONTRACT))
    raw["stack"] = stack
    (directory / "cdk.tf.json").write_text(json.dumps({"output": {"datapipe_manifest": {"value": raw}}}))
    return synth


def test_synth_dir_finds_the_stack_of_any_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synth = _app(tmp_path)
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("DATAPIPE_PROJECT_DIR", str(tmp_path / "not-this-one"))  # synth_dir wins over the project
    manifest = load_manifest("orders", synth_dir=synth)
    assert manifest.stack == "orders" and manifest.origin.startswith(str(synth / "stacks" / "orders"))
    assert load_manifest("orders", synth_dir=synth / "stacks" / "orders").stack == "orders"  # one stack's directory
    (tmp_path / "app" / "cdktf.json").write_text(json.dumps({"app": "python main.py", "output": "cdktf.out"}))
    assert load_manifest("orders", synth_dir=tmp_path / "app").stack == "orders"  # the app's directory


def test_synth_dir_prefers_the_local_target_and_deployed_state(tmp_path: Path) -> None:
    synth = _app(tmp_path)
    local = _app(tmp_path, local=True).parent / "cdktf.out" / "local" / "stacks" / "orders"
    assert load_manifest("orders", synth_dir=synth).origin.startswith(str(local))
    deployed = json.loads(json.dumps(CONTRACT))
    deployed["stack"], deployed["target"] = "orders", "local"
    (synth / "stacks" / "orders" / "terraform.orders.tfstate").write_text(
        json.dumps({"outputs": {"datapipe_manifest": {"value": deployed}}})
    )
    manifest = load_manifest("orders", synth_dir=synth)
    assert "terraform.orders.tfstate" in manifest.origin and manifest.target == "local"


def test_synth_dir_without_the_stack_names_both_ways_out(tmp_path: Path) -> None:
    synth = _app(tmp_path)
    with pytest.raises(ManifestError, match=r"cdktf synth.*synth_dir") as error:
        load_manifest("payments", synth_dir=synth)
    assert "manifest_path" in str(error.value)
    with pytest.raises(ManifestError, match="not a directory"):
        load_manifest("payments", synth_dir=tmp_path / "absent")


def test_without_a_project_the_error_names_manifest_path_and_synth_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runtime_manifest, "find_project_dir", lambda start=None: None)
    with pytest.raises(ManifestError, match="manifest_path"):
        load_manifest("payments")
    with pytest.raises(ManifestError, match="name the stack"):
        load_manifest(None)


def test_without_a_project_a_deployed_state_is_still_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runtime_manifest, "find_project_dir", lambda start=None: None)
    state = tmp_path / "run" / "terraform" / "payments.tfstate"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"outputs": {"datapipe_manifest": {"value": CONTRACT}}}))
    assert load_manifest("payments").origin.startswith(str(state))
