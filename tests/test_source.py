from __future__ import annotations

from datetime import timedelta

import pytest

from datapipe_cdk import CdcSource, Column, DatapipeError, Engine, SnapshotMode, Table

from .conftest import make_stack, resources, synth_stack


def _connector(doc, name):
    return next(c for c in resources(doc, "kafka-connect_connector") if c["name"] == name)


def _source(stack, **overrides):
    kwargs = dict(
        engine="mysql",
        host="payments-mysql",
        database="payments",
        tables={"orders": ["id"], "refunds": ["id"], "accounts": ["id"]},
        topic_prefix="payments",
    )
    kwargs.update(overrides)
    return CdcSource(stack, "payments-db", **kwargs)


def test_cdc_source_creates_one_topic_per_table_plus_history_and_heartbeat(stack):
    _source(stack, heartbeat=timedelta(seconds=10))
    topics = {t["name"]: t for t in resources(synth_stack(stack), "kafka_topic")}
    assert set(topics) == {
        "payments.payments.orders",
        "payments.payments.refunds",
        "payments.payments.accounts",
        "_schema-history.payments",
        "__debezium-heartbeat.payments",
    }
    history = topics["_schema-history.payments"]
    assert history["partitions"] == 1
    assert history["config"]["retention.ms"] == "-1"
    assert history["config"]["retention.bytes"] == "-1"


def test_postgres_topics_use_schema_and_no_history(stack):
    _source(stack, engine=Engine.POSTGRESQL, schema="sales", topic_prefix="ledger")
    doc = synth_stack(stack)
    names = {t["name"] for t in resources(doc, "kafka_topic")}
    assert names == {"ledger.sales.orders", "ledger.sales.refunds", "ledger.sales.accounts"}
    config = _connector(doc, "payments-db")["config"]
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput"
    assert config["database.dbname"] == "payments"
    assert config["table.include.list"] == r"sales\.orders,sales\.refunds,sales\.accounts"
    assert config["publication.autocreate.mode"] == "filtered"
    assert "schema.history.internal.kafka.topic" not in config


@pytest.mark.parametrize(
    ("engine", "connector_class"),
    [
        ("mysql", "io.debezium.connector.mysql.MySqlConnector"),
        ("mariadb", "io.debezium.connector.mariadb.MariaDbConnector"),
    ],
)
def test_binlog_connector_config(stack, engine, connector_class):
    _source(stack, engine=engine, snapshot_mode=SnapshotMode.NO_DATA, server_id=4242)
    config = _connector(synth_stack(stack), "payments-db")["config"]
    assert config["connector.class"] == connector_class
    assert config["name"] == "payments-db", "the provider requires config.name == resource name"
    assert config["database.server.id"] == "4242"
    assert config["snapshot.mode"] == "no_data"
    assert config["topic.prefix"] == "payments"
    assert config["database.include.list"] == "payments"
    assert config["message.key.columns"] == "payments.orders:id;payments.refunds:id;payments.accounts:id"
    assert config["schema.history.internal.kafka.topic"].startswith("${kafka_topic.")
    assert config["schema.history.internal.producer.security.protocol"] == "SASL_PLAINTEXT"


def test_password_and_jaas_only_in_config_sensitive_as_variables(stack):
    _source(stack)
    doc = synth_stack(stack)
    connector = _connector(doc, "payments-db")
    assert "database.password" not in connector["config"]
    assert connector["config_sensitive"]["database.password"] == "${var.payments_db_password}"
    jaas = connector["config_sensitive"]["schema.history.internal.producer.sasl.jaas.config"]
    assert 'password="${var.connect_sasl_password}"' in jaas
    assert doc["variable"]["payments_db_password"]["sensitive"] is True
    assert doc["variable"]["connect_sasl_password"]["sensitive"] is True


def test_masked_hashed_and_excluded_columns(stack):
    _source(stack, masked={"accounts": ["email"]}, hashed={"accounts": [Column("name")]}, excluded={"accounts": ["phone"]})
    connector = _connector(synth_stack(stack), "payments-db")
    assert connector["config"]["column.mask.with.8.chars"] == r"payments\.accounts\.email"
    assert connector["config"]["column.exclude.list"] == r"payments\.accounts\.phone"
    assert connector["config"]["column.mask.hash.v2.SHA-256.with.salt.${var.payments_db_hash_salt}"] == (
        r"payments\.accounts\.name"
    )


def test_connector_depends_on_its_topics_and_acls(stack):
    _source(stack)
    connector = _connector(synth_stack(stack), "payments-db")
    assert sum(d.startswith("kafka_topic.") for d in connector["depends_on"]) == 4
    assert any(d.startswith("kafka_acl.") for d in connector["depends_on"])


def test_connect_principal_gets_prefixed_write_and_history_acls(stack):
    _source(stack)
    rows = {
        (a["resource_type"], a["resource_name"], a["resource_pattern_type_filter"], a["acl_operation"])
        for a in resources(synth_stack(stack), "kafka_acl")
        if a["acl_principal"] == "User:connect"
    }
    assert ("Topic", "payments.", "Prefixed", "Write") in rows
    assert ("Topic", "_schema-history.payments", "Literal", "Read") in rows
    assert ("Group", "payments-schemahistory", "Literal", "Read") in rows
    assert ("Topic", "connect-offsets", "Literal", "Write") in rows


def test_topic_accessor_returns_the_table_topic(stack):
    source = _source(stack)
    assert source.topic("orders").name == "payments.payments.orders"
    with pytest.raises(DatapipeError, match="no captured table named 'nope'"):
        source.topic("nope")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "oracle"}, "engine must be one of 'mysql', 'mariadb', 'postgresql', got 'oracle'"),
        ({"tables": {}}, "tables must name at least one table"),
        ({"tables": {"bad-name": ["id"]}}, "table name must be a table name"),
        ({"port": 70000}, "port must be <= 65535, got 70000"),
        ({"host": "bad host"}, "host must be a host name"),
        ({"masked": {"ghost": ["x"]}}, "masked names a table that is not captured"),
        ({"masked": {"orders": ["id"]}}, "primary key column orders.id cannot be masked"),
        ({"masked": {"accounts": ["email"]}, "excluded": {"accounts": ["email"]}}, "has two treatments"),
        ({"tables": {"orders": Table(["id"], [Column("amount")])}}, "primary key columns must be among its columns"),
        ({"heartbeat": timedelta(0)}, "heartbeat must be longer than"),
        ({"topic_prefix": "bad prefix"}, "topic_prefix may hold only"),
    ],
)
def test_bad_source_input(stack, overrides, message):
    with pytest.raises(DatapipeError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")) as error:
        _source(stack, **overrides)
    assert str(error.value).startswith("test/payments-db: ")
    assert stack.node.try_find_child("payments-db") is None


def test_duplicate_connector_names_are_refused():
    stack = make_stack()
    _source(stack)
    with pytest.raises(DatapipeError, match="connector name is already used"):
        stack.claim("connector", "payments-db", "test/other")
