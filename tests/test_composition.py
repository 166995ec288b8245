"""Composing like CDK: constructs inside your own constructs, Terraform values as arguments, addresses that
do not depend on call order, and one typed manifest read back exactly as written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from constructs import Construct

from datapipe_cdk import (
    BigQuerySink,
    CdcSource,
    Column,
    ColumnType,
    DatapipeError,
    DataPipelineStack,
    MicroWarehouse,
    Principal,
    Table,
)
from datapipe_cdk._cdk import App, TerraformVariable
from datapipe_cdk._core import path_of
from datapipe_cdk.manifest import VERSION, Manifest, ManifestError

from .conftest import make_stack, resources, synth_stack
from .test_examples import _example_docs

ORDERS = Table(["id"], [Column("id", ColumnType.INT64), Column("amount", ColumnType.NUMERIC)])
OWNER = Principal.group("payments-eng@acme.com")


class PaymentsDomain(Construct):
    """What a platform team writes: one construct holding a source, its sink and a warehouse."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        source = CdcSource(self, "db", engine="mysql", host="db", database="pay", tables={"orders": ORDERS}, owner=OWNER)
        sink = BigQuerySink(self, "raw", source=source, dataset="pay_raw", owners=[OWNER])
        warehouse = MicroWarehouse(self, "finance", owners=[OWNER], readers=[Principal.group("fin@acme.com")])
        warehouse.expose(sink.table("orders"))


def _flat(stack: DataPipelineStack) -> None:
    source = CdcSource(stack, "db", engine="mysql", host="db", database="pay", tables={"orders": ORDERS}, owner=OWNER)
    sink = BigQuerySink(stack, "raw", source=source, dataset="pay_raw", owners=[OWNER])
    warehouse = MicroWarehouse(stack, "finance", owners=[OWNER], readers=[Principal.group("fin@acme.com")])
    warehouse.expose(sink.table("orders"))


def _normalized(doc: dict[str, Any], wrapper: str = "") -> dict[str, list[str]]:
    """Every resource's attributes, with logical ids blanked out and the wrapper's path segment removed
    (descriptions quote construct paths)."""
    text_of = {}
    for kind, items in doc["resource"].items():
        rows = []
        for body in items.values():
            text = json.dumps({k: v for k, v in body.items() if k != "//"}, sort_keys=True)
            text = re.sub(r"\$\{([a-z0-9_-]+)\.[^.}]+\.", r"${\1.X.", text)
            text = re.sub(r'"([a-z0-9_-]+)\.[A-Za-z0-9_-]+_[0-9A-F]{8}"', r'"\1.X"', text)  # depends_on entries
            rows.append(text.replace(f"test/{wrapper}/", "test/") if wrapper else text)
        text_of[kind] = sorted(rows)
    return text_of


def test_library_constructs_work_inside_a_users_own_construct():
    nested = make_stack()
    domain = PaymentsDomain(nested, "payments")
    flat = make_stack()
    _flat(flat)
    assert _normalized(synth_stack(nested), "payments") == _normalized(synth_stack(flat))
    source = domain.node.find_child("db")
    assert isinstance(source, CdcSource) and path_of(source.connector) == "test/payments/db/connector"


def test_terraform_values_are_accepted_where_terraform_decides_them():
    stack = make_stack()
    host = TerraformVariable(stack, "db_host", type="string").string_value
    port = TerraformVariable(stack, "db_port", type="number").number_value
    source = CdcSource(stack, "db", engine="postgresql", host=host, port=port, database="pay", tables={"orders": ORDERS})
    config = resources(synth_stack(stack), "kafka-connect_connector")[0]["config"]
    assert config["database.hostname"] == "${var.db_host}"
    assert config["database.port"] == "${var.db_port}"
    assert source.host == host


def test_a_terraform_value_where_the_library_needs_the_literal_says_why():
    stack = make_stack()
    database = TerraformVariable(stack, "db_name", type="string").string_value
    with pytest.raises(DatapipeError, match=r"test/db: database must be a literal value, not a Terraform token: it names"):
        CdcSource(stack, "db", engine="mysql", host="db", database=database, tables={"orders": ORDERS})


def _grant_addresses(readers: list[Principal], extra: list[Principal]) -> set[str]:
    stack = make_stack()
    warehouse = MicroWarehouse(stack, "finance", owners=[OWNER], readers=readers)
    for principal in extra:
        warehouse.grant_query(principal, until=datetime(2030, 1, 1, tzinfo=UTC))
    doc = synth_stack(stack)
    return set(doc["resource"]["google_bigquery_dataset_access"]) | set(doc["resource"].get("google_project_iam_member", {}))


def test_inserting_or_reordering_readers_and_grants_changes_no_existing_address():
    a, b, c = (Principal.group(f"{n}@acme.com") for n in "abc")
    x, y = Principal.user("x@acme.com"), Principal.user("y@acme.com")
    before = _grant_addresses([a, b], [x])
    after = _grant_addresses([c, b, a], [y, x])
    assert before <= after, f"addresses renamed: {sorted(before - after)}"
    assert len(after - before) == 3  # c's entry, y's entry and y's job-user member; nothing else moved


def test_previous_numbered_addresses_move_to_the_new_ones():
    stack = make_stack()
    MicroWarehouse(stack, "finance", owners=[OWNER], readers=[Principal.group("fin@acme.com")])
    moved = synth_stack(stack)["moved"]
    assert {"from": "google_bigquery_dataset_access.finance_dataset_access-1_55C5FC11",
            "to": "google_bigquery_dataset_access.finance_dataset_grant-owner-group-payments-engacmecom_9A1C2F87"} in moved or (
        any(m["from"].startswith("google_bigquery_dataset_access.finance_dataset_access-1_") for m in moved)
    )  # fmt: skip
    assert all(m["from"] != m["to"] for m in moved)


@pytest.mark.parametrize("stack_name", ["payments", "ledger"])
def test_the_manifest_reads_back_exactly_as_written(stack_name):
    written = _example_docs("production")[stack_name]["output"]["datapipe_manifest"]["value"]
    manifest = Manifest.from_dict(written, "golden")
    assert manifest.version == VERSION
    again = manifest.to_dict()
    assert _without_nulls(again) == _without_nulls(written)
    assert Manifest.from_dict(again, "again").to_dict() == again


def test_a_manifest_newer_than_the_library_is_refused():
    with pytest.raises(ManifestError, match="manifest version 99 is newer than this datapipe-cdk reads"):
        Manifest.from_dict({"version": 99}, "future.json")


def test_a_manifest_of_version_1_is_read_with_defaults():
    old = {
        "stack": "s",
        "kafka": {"bootstrap_servers": ["k:9092"]},
        "connect": {"url": "http://c"},
        "bigquery": {"project": "p-1234"},
        "sources": [{"name": "db", "engine": "mysql", "host": "h", "port": 3306, "database": "d", "connector": "db",
                     "topic_prefix": "db", "tables": [{"name": "t", "primary_key": ["id"], "topic": "db.d.t"}]}],
    }  # fmt: skip
    manifest = Manifest.from_dict(old, "v1.json")
    assert manifest.target == "production" and manifest.sources[0].tables[0].columns_declared is False


def _without_nulls(value: Any) -> Any:
    """cdktf drops null fields from outputs; compare what is set."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def test_constructs_find_their_stack_from_any_depth():
    stack = make_stack()
    outer = Construct(stack, "outer")
    inner = Construct(outer, "inner")
    assert DataPipelineStack.of(inner) is stack
    with pytest.raises(DatapipeError, match="must be created inside a DataPipelineStack"):
        DataPipelineStack.of(Construct(App(), "lonely"))
