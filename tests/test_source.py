from __future__ import annotations

from datetime import timedelta

import pytest

from datapipe_cdk import CdcSource, Column, ColumnType, DatapipeError, Engine, SnapshotMode, Table

from .conftest import make_stack, resources, synth_stack


def _connector(doc, name):
    return next(c for c in resources(doc, "kafka-connect_connector") if c["name"] == name)


KEYED = Table(["id"], [Column("id", ColumnType.INT64)])
ACCOUNTS = Table(
    ["id"], [Column("id", ColumnType.INT64), Column("name"), Column("email"), Column("phone"), Column("age", ColumnType.INT64)]
)


def _source(stack, **overrides):
    kwargs = dict(
        engine="mysql",
        host="payments-mysql",
        database="payments",
        tables={"orders": KEYED, "refunds": KEYED, "accounts": ACCOUNTS},
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
    assert config["publication.autocreate.mode"] == "disabled"  # the admin owns the publication
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


def test_secrets_are_worker_file_references_never_values_or_variables(stack):
    _source(stack)
    doc = synth_stack(stack)
    connector = _connector(doc, "payments-db")
    secrets = "/etc/kafka-connect/secrets/payments-db.properties"
    assert connector["config"]["database.password"] == f"$${{file:{secrets}:database.password}}"
    for client in ("producer", "consumer"):
        key = f"schema.history.internal.{client}.sasl.jaas.config"
        assert connector["config"][key] == f"$${{file:{secrets}:kafka.sasl.jaas.config}}"
    assert "config_sensitive" not in connector
    assert not {"payments_db_password", "connect_sasl_password"} & set(doc.get("variable", {}))
    manifest = doc["output"]["datapipe_manifest"]["value"]
    assert {"file": secrets, "keys": ["database.password", "kafka.sasl.jaas.config"], "used_by": "payments-db"}.items() <= (
        manifest["worker_secrets"][0].items()
    )


def test_masked_hashed_and_excluded_columns(stack):
    _source(stack, masked={"accounts": ["email"]}, hashed={"accounts": [Column("name")]}, excluded={"accounts": ["phone"]})
    connector = _connector(synth_stack(stack), "payments-db")
    assert connector["config"]["column.mask.with.8.chars"] == r"payments\.accounts\.email"
    included = connector["config"]["column.include.list"].split(",")
    assert r"payments\.accounts\.phone" not in included  # excluded: never read
    assert {r"payments\.accounts\.email", r"payments\.accounts\.name", r"payments\.accounts\.id"} <= set(included)
    assert "column.exclude.list" not in connector["config"]
    assert connector["config"]["column.mask.hash.v2.SHA-256.with.salt.${var.payments_db_hash_salt}"] == (
        r"payments\.accounts\.name"
    )


def test_connector_depends_on_its_topics_and_acls(stack):
    _source(stack)
    connector = _connector(synth_stack(stack), "payments-db")
    assert sum(d.startswith("kafka_topic.") for d in connector["depends_on"]) == 4  # 3 tables + history
    assert any(d.startswith("kafka_acl.") for d in connector["depends_on"])


def test_connect_principal_gets_literal_acls_on_exactly_the_declared_topics(stack):
    _source(stack)
    rows = {
        (a["resource_type"], a["resource_name"], a["resource_pattern_type_filter"], a["acl_operation"])
        for a in resources(synth_stack(stack), "kafka_acl")
        if a["acl_principal"] == "User:connect"
    }
    assert ("Topic", "payments.payments.orders", "Literal", "Write") in rows
    assert not any(pattern == "Prefixed" for _, _, pattern, _ in rows)
    assert ("Topic", "_schema-history.payments", "Literal", "Read") in rows
    assert ("Group", "payments-schemahistory", "Literal", "Read") in rows
    assert ("Topic", "connect-offsets", "Literal", "Write") in rows


def test_cluster_acls_are_the_workers_never_a_sources():
    """Every stack on a worker would declare the same cluster binding; destroying one stack would delete it for all
    (seen live: a destroyed app took Describe on the cluster from the examples). Only the worker's ACLs hold it."""
    from datapipe_cdk import ConnectCluster, DataPipelineStack, GcpProject, KafkaCluster, Principal
    from datapipe_cdk._cdk import App
    from datapipe_cdk.governance import opt_out

    def cluster_acls(manage_acls: bool) -> set[tuple[str, str]]:
        stack = DataPipelineStack(
            App(), "t", kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="admin"),
            connect=ConnectCluster(url="http://c:8083", principal=Principal.kafka_user("connect"),
                                   basic_auth_username="d", manage_acls=manage_acls),
            gcp=GcpProject(project="acme-data"),
        )  # fmt: skip
        opt_out(stack, "owner-required", "ACL unit test")
        _source(stack)
        return {
            (a["acl_operation"], a["acl_principal"])
            for a in resources(synth_stack(stack), "kafka_acl")
            if a["resource_type"] == "Cluster"
        }

    assert cluster_acls(manage_acls=False) == set()
    assert cluster_acls(manage_acls=True) == {("Describe", "User:connect"), ("DescribeConfigs", "User:connect")}


def test_topic_accessor_returns_the_table_topic(stack):
    source = _source(stack)
    assert source.topic("orders").name == "payments.payments.orders"
    with pytest.raises(DatapipeError, match="no captured table named 'nope'"):
        source.topic("nope")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "oracle"}, "engine must be one of 'mysql', 'mariadb', 'postgresql' (or the Engine member), got 'oracle'"),
        ({"tables": {}}, "tables must name at least one table"),
        ({"tables": {"bad-name": KEYED}}, "table name must be a table name"),
        ({"port": 70000}, "port must be <= 65535, got 70000"),
        ({"host": "bad host"}, "host must be a host name"),
        ({"masked": {"ghost": ["x"]}}, "masked names a table that is not captured"),
        ({"masked": {"accounts": ["id"]}}, "primary key column accounts.id cannot be masked"),
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
