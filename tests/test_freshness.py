"""Freshness objectives: what synth derives, what it refuses, and the monitors it writes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from datapipe_cdk import (
    App,
    BigQuerySink,
    CdcSource,
    Column,
    ColumnType,
    ConnectCluster,
    DatapipeError,
    DataPipelineStack,
    GcpProject,
    KafkaCluster,
    MicroWarehouse,
    Principal,
    Table,
)
from datapipe_cdk.governance import opt_out
from datapipe_cdk.heartbeat import heartbeat_statement

from .conftest import make_stack, resources, synth_stack

ORDERS = Table(["id"], [Column("id", ColumnType.INT64), Column("status")])
OWNER = Principal.group("o@acme.com")


def _source(stack: DataPipelineStack, **kwargs: object) -> CdcSource:
    return CdcSource(stack, "db", engine="postgresql", host="db", database="shop", schema="sales",
                     tables={"orders": ORDERS, "items": ORDERS}, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def _connector(doc: dict, name: str) -> dict:
    return next(c for c in resources(doc, "kafka-connect_connector") if c["name"] == name)


def test_an_objective_derives_a_heartbeat_that_travels_the_whole_path(stack: DataPipelineStack) -> None:
    source = _source(stack, freshness=timedelta(minutes=1))
    BigQuerySink(stack, "raw", source=source, dataset="raw", tables=["orders"])
    doc = synth_stack(stack)
    config = _connector(doc, "db")["config"]
    assert config["heartbeat.interval.ms"] == "15000", "a quarter of the objective"
    assert config["heartbeat.action.query"] == heartbeat_statement(True, "sales")
    assert r"sales\.debezium_heartbeat\.beat" in config["column.include.list"]
    assert "sales.debezium_heartbeat" in config["table.include.list"].replace("\\", "")
    topics = {t["name"] for t in resources(doc, "kafka_topic")}
    assert "db.sales.debezium_heartbeat" in topics
    tables = {t["table_id"] for t in resources(doc, "google_bigquery_table")}
    assert "db_sales_debezium_heartbeat" in tables, "the sink writes the beats even when tables= leaves them out"
    assert "db_sales_items" not in tables
    manifest = doc["output"]["datapipe_manifest"]["value"]["sources"][0]
    assert (manifest["freshness_seconds"], manifest["heartbeat_table"]) == (60, "sales.debezium_heartbeat")


def test_a_faster_declared_heartbeat_is_kept_and_a_slower_one_refused() -> None:
    stack = make_stack()
    _source(stack, freshness=timedelta(minutes=1), heartbeat=timedelta(seconds=5))
    assert _connector(synth_stack(stack), "db")["config"]["heartbeat.interval.ms"] == "5000"
    declared = make_stack()
    _source(declared, freshness=timedelta(minutes=2), heartbeat=timedelta(minutes=1))  # slower than 1/4, within 1/2
    assert _connector(synth_stack(declared), "db")["config"]["heartbeat.interval.ms"] == "60000", "used as declared"
    with pytest.raises(DatapipeError, match=re.escape("heartbeat=0:05:00 cannot show freshness=0:01:00")):
        _source(make_stack(), freshness=timedelta(minutes=1), heartbeat=timedelta(minutes=5))


def test_an_objective_the_sink_cannot_meet_is_refused() -> None:
    with pytest.raises(DatapipeError, match=re.escape("freshness must be at least 0:00:10")):
        _source(make_stack(), freshness=timedelta(seconds=3))


def test_production_watches_each_objective_with_a_scheduled_check_and_an_alert_policy() -> None:
    stack = DataPipelineStack(
        App(), "prod",
        kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="t"),
        connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="t"),
        gcp=GcpProject(project="acme-data", alert_channels=["projects/acme-data/notificationChannels/42"]),
    )  # fmt: skip
    opt_out(stack, "owner-required", "construct unit test of freshness monitors")
    BigQuerySink(stack, "raw", source=_source(stack, freshness=timedelta(minutes=5)), dataset="raw")
    doc = synth_stack(stack)
    checks = [c for c in resources(doc, "google_bigquery_data_transfer_config") if "freshness" in c["display_name"]]
    assert len(checks) == 1 and checks[0]["schedule"] == "every 15 minutes"
    assert "datapipe freshness missed: prod/raw (objective 5 minutes)" in checks[0]["params"]["query"]
    assert "FROM `acme-data.raw.db_sales_debezium_heartbeat`" in checks[0]["params"]["query"]
    [alert] = resources(doc, "google_monitoring_alert_policy")
    assert alert["notification_channels"] == ["projects/acme-data/notificationChannels/42"]
    assert alert["conditions"][0]["condition_matched_log"][0]["filter"] == (
        'resource.type="bigquery_dts_config" AND "datapipe freshness missed: prod/raw "'
    )

    sink = stack.node.find_child("raw")
    assert not [m for m in sink.node.metadata if m.type == "@cdktf/warn"], "channels set: nothing to warn about"


def test_an_alert_policy_that_notifies_no_one_is_warned_about(stack: DataPipelineStack) -> None:
    sink = BigQuerySink(stack, "raw", source=_source(stack, freshness=timedelta(minutes=5)), dataset="raw")
    [alert] = resources(synth_stack(stack), "google_monitoring_alert_policy")
    assert not alert.get("notification_channels")
    [warning] = [str(m.data) for m in sink.node.metadata if m.type == "@cdktf/warn"]
    assert warning.startswith("freshness objective 5 minutes of test/db: its alert policy notifies no one; set GcpProject(")


def test_no_monitor_without_an_objective(stack: DataPipelineStack) -> None:
    BigQuerySink(stack, "raw", source=_source(stack), dataset="raw")
    doc = synth_stack(stack)
    assert resources(doc, "google_monitoring_alert_policy") == []
    assert "heartbeat.action.query" not in _connector(doc, "db")["config"]


def test_a_warehouse_objective_needs_a_source_objective_at_least_as_strict(stack: DataPipelineStack) -> None:
    idle = BigQuerySink(stack, "raw", source=_source(stack), dataset="raw")
    wh = MicroWarehouse(stack, "wh", owners=[OWNER], freshness=timedelta(minutes=5))
    with pytest.raises(
        DatapipeError, match=r"needs a source heartbeat to measure it: declare CdcSource\('db', \.\.\., freshness="
    ):
        wh.expose(idle.table("orders"))
    fast = make_stack()
    raw = BigQuerySink(fast, "raw", source=_source(fast, freshness=timedelta(minutes=10)), dataset="raw")
    strict = MicroWarehouse(fast, "wh", owners=[OWNER], freshness=timedelta(minutes=5))
    with pytest.raises(DatapipeError, match=r"stricter than its source's objective \(0:10:00\)"):
        strict.expose(raw.table("orders"))


def test_a_table_named_like_the_heartbeat_table_is_refused(stack: DataPipelineStack) -> None:
    with pytest.raises(DatapipeError, match="debezium_heartbeat is the heartbeat table a freshness objective adds"):
        CdcSource(stack, "db", engine="mysql", host="db", database="shop", tables={"debezium_heartbeat": ORDERS})
