from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlglot

from datapipe_cdk import BigQuerySink, CdcSource, Column, ColumnType, DatapipeError, MicroWarehouse, Principal, Table
from datapipe_cdk.governance import opt_out

from .conftest import make_stack, resources, synth_stack

ORDERS = Table(
    ["id"], [Column("id", ColumnType.INT64), Column("amount", ColumnType.NUMERIC, precision=12, scale=2), Column("email")]
)


def _pipeline(stack, **sink_kwargs):
    source = CdcSource(
        stack,
        "db",
        engine="mysql",
        host="db",
        database="shop",
        tables={"orders": ORDERS, "events": Table([], [Column("payload")])},
        topic_prefix="shop",
        masked={"orders": ["email"]},
    )
    sink = BigQuerySink(stack, "raw", source=source, dataset="shop_raw", tables=["orders"], **sink_kwargs)
    return source, sink


def _by_name(doc, kind, field, value):
    return next(r for r in resources(doc, kind) if r[field] == value)


def test_sink_creates_dataset_changelog_table_dead_letter_topic_and_connector(stack):
    _pipeline(stack, retention=timedelta(days=30))
    doc = synth_stack(stack)
    dataset = _by_name(doc, "google_bigquery_dataset", "dataset_id", "shop_raw")
    assert dataset["default_partition_expiration_ms"] == 30 * 86400 * 1000
    table = _by_name(doc, "google_bigquery_table", "table_id", "shop_shop_orders")
    fields = json.loads(table["schema"])
    assert [(f["name"], f["type"]) for f in fields] == [
        ("id", "INTEGER"),
        ("amount", "STRING"),  # the exact decimal text; the view casts it
        ("email", "STRING"),
        ("__op", "STRING"),
        ("__deleted", "STRING"),
        ("__source_ts_ms", "INTEGER"),
        ("__snapshot", "STRING"),
        ("__file", "STRING"),
        ("__pos", "INTEGER"),
        ("__row", "INTEGER"),
        ("__server_id", "INTEGER"),
        ("__gtid", "STRING"),
        ("_kafka", "RECORD"),
    ]
    assert "lifecycle" not in table, "schema changes are Terraform's: a declared column is added by apply"
    assert table["time_partitioning"][0]["expiration_ms"] == 30 * 86400 * 1000
    assert table["dataset_id"].startswith("${google_bigquery_dataset.")
    state = _by_name(doc, "google_bigquery_table", "table_id", "shop_shop_orders__state")
    assert state["schema"] == table["schema"]
    assert "time_partitioning" not in state, "the state never expires: retention applies to the changelog only"
    assert state["clustering"] == ["id"]
    log = _by_name(doc, "google_bigquery_table", "table_id", "_datapipe_compaction")
    assert [f["name"] for f in json.loads(log["schema"])] == ["table_id", "compacted_at"]
    assert "dlq.raw" in {t["name"] for t in resources(doc, "kafka_topic")}
    config = _by_name(doc, "kafka-connect_connector", "name", "raw")["config"]
    assert config["connector.class"] == "com.wepay.kafka.connect.bigquery.BigQuerySinkConnector"
    assert config["sanitizeTopics"] == "true", "table = sanitized topic name, in every KCBQ line"
    assert config["schemaRetriever"] == "com.wepay.kafka.connect.bigquery.retrieve.IdentitySchemaRetriever"
    assert config["topics"].startswith("${kafka_topic.")
    assert config["transforms.unwrap.delete.tombstone.handling.mode"] == "rewrite"
    assert config["kafkaDataFieldName"] == "_kafka"
    assert config["errors.deadletterqueue.topic.name"].startswith("${kafka_topic.")
    assert config["allowNewBigQueryFields"] == "false"
    assert "decimalHandlingMode" not in config, "not a key this KCBQ line reads"
    assert config["transforms.unwrap.add.fields"] == "op,source.ts_ms,snapshot,file,pos,row,server_id,gtid"


def test_sink_casts_what_kcbq_would_convert_lossily_per_topic():
    stack = make_stack()
    table = Table(
        ["k1", "k2"],
        [
            Column("k1", ColumnType.DATETIME),
            Column("k2", ColumnType.UINT64),
            Column("d", ColumnType.DATE),
            Column("t", ColumnType.TIME),
            Column("ts", ColumnType.TIMESTAMP),
            Column("b", ColumnType.BOOL),
            Column("n", ColumnType.NUMERIC, precision=65, scale=30),
            Column("arr", ColumnType.INT64, repeated=True),
        ],
    )
    source = CdcSource(
        stack, "db", engine="mariadb", host="db", database="shop", tables={"all": table, "keys": Table(["id"])}, topic_prefix="s"
    )
    BigQuerySink(stack, "raw", source=source, dataset="raw")
    opt_out(source, "columns-declared", "a key-only table on purpose")
    doc = synth_stack(stack)
    config = _by_name(doc, "kafka-connect_connector", "name", "raw")["config"]
    assert config["transforms"] == "unwrap,cast0,cast1"
    assert config["predicates"] == "is0,is1"
    assert config["transforms.cast0.spec"] == "k1:int64,k2:string,d:int32,t:int64,ts:string,b:int8"
    assert config["predicates.is0.pattern"] == r"s\.shop\.all"
    assert config["transforms.cast0.predicate"] == "is0"
    assert config["transforms.cast1.spec"] == "id:string", "a key-only table carries its key, as text"
    fields = {f["name"]: f for f in json.loads(_by_name(doc, "google_bigquery_table", "table_id", "s_shop_keys")["schema"])}
    assert fields["id"]["type"] == "STRING"
    assert _by_name(doc, "google_bigquery_table", "table_id", "s_shop_keys")["clustering"] == ["id"]
    fields = {f["name"]: f for f in json.loads(_by_name(doc, "google_bigquery_table", "table_id", "s_shop_all")["schema"])}
    assert (fields["arr"]["type"], fields["arr"]["mode"]) == ("INTEGER", "REPEATED")
    assert fields["n"]["type"] == "STRING"
    source_config = _by_name(doc, "kafka-connect_connector", "name", "db")["config"]
    assert source_config["time.precision.mode"] == "adaptive_time_microseconds"
    assert source_config["decimal.handling.mode"] == "string"
    assert source_config["bigint.unsigned.handling.mode"] == "precise"
    assert source_config["column.include.list"].split(",") == [
        *(rf"shop\.all\.{c.name}" for c in table.columns),
        r"shop\.keys\.id",
        *(rf"shop\.debezium_signal\.{c}" for c in ("id", "type", "data")),  # the signal table's, see CdcSource
    ]


def test_compaction_is_scheduled_in_production_and_left_to_the_local_compactor_locally(monkeypatch):
    stack = make_stack()
    _, sink = _pipeline_on(stack)
    doc = synth_stack(stack)
    [scheduled] = resources(doc, "google_bigquery_data_transfer_config")
    assert scheduled["data_source_id"] == "scheduled_query"
    assert scheduled["schedule"] == "every 60 minutes"
    assert scheduled["service_account_name"].startswith("${google_service_account.")
    script = scheduled["params"]["query"]
    assert script.count("MERGE `acme-data.shop_raw.shop_shop_orders__state`") == 1
    for statement in sink.table("orders").compaction.statements():
        sqlglot.parse_one(statement, read="bigquery")
    assert "_PARTITIONTIME" in script
    manifest = doc["output"]["datapipe_manifest"]["value"]["sinks"][0]
    assert manifest["tables"][0]["state_table"] == "shop_shop_orders__state"
    assert manifest["tables"][0]["compaction"] == list(sink.table("orders").compaction.statements())
    monkeypatch.setenv("DATAPIPE_TARGET", "local")
    local = make_stack()
    _, local_sink = _pipeline_on(local)
    local_doc = synth_stack(local)
    assert resources(local_doc, "google_bigquery_data_transfer_config") == []
    assert "_PARTITIONTIME" not in "".join(local_sink.table("orders").compaction.statements())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compact_every": timedelta(minutes=5)}, "compact_every must be at least 0:15:00"),
        ({"compact_every": timedelta(minutes=30, seconds=1)}, "compact_every must be whole minutes"),
        ({"compact_every": timedelta(hours=3)}, "recent_window must be at least 2 x compact_every + 1 hour (7:00:00)"),
        ({"recent_window": timedelta(hours=1)}, "recent_window must be at least 2:00:00"),
    ],
)
def test_bad_compaction_settings_are_refused(stack, kwargs, message):
    with pytest.raises(DatapipeError, match=re.escape(message)):
        _pipeline(stack, **kwargs)


def _pipeline_on(stack):
    source, sink = _pipeline(stack)
    return source, sink


def test_sink_identity_is_least_privilege_and_its_key_never_passes_through_terraform(stack):
    _pipeline(stack)
    doc = synth_stack(stack)
    [account] = resources(doc, "google_service_account")
    assert 6 <= len(account["account_id"]) <= 30
    writer = next(a for a in resources(doc, "google_bigquery_dataset_access") if a.get("role") == "WRITER")
    assert writer["user_by_email"].startswith("${google_service_account.")
    [job_user] = resources(doc, "google_project_iam_member")
    assert job_user["role"] == "roles/bigquery.jobUser"
    assert not any(m["role"] == "roles/bigquery.dataEditor" for m in resources(doc, "google_project_iam_member"))
    assert resources(doc, "google_service_account_key") == [], "a key in Terraform would sit in its state"
    connector = _by_name(doc, "kafka-connect_connector", "name", "raw")
    assert connector["config"]["keySource"] == "FILE"
    assert connector["config"]["keyfile"] == "/etc/kafka-connect/secrets/raw-gcp-key.json"
    assert "config_sensitive" not in connector
    secrets = doc["output"]["datapipe_manifest"]["value"]["worker_secrets"]
    assert any(s["file"] == "/etc/kafka-connect/secrets/raw-gcp-key.json" and s["used_by"] == "raw" for s in secrets)


def test_sink_without_iam_management_still_reads_its_key_on_the_worker():
    stack = make_stack(manage_iam=False)
    _pipeline(stack)
    doc = synth_stack(stack)
    assert resources(doc, "google_service_account") == []
    assert resources(doc, "google_project_iam_member") == []
    connector = _by_name(doc, "kafka-connect_connector", "name", "raw")
    assert connector["config"]["keyfile"] == "/etc/kafka-connect/secrets/raw-gcp-key.json"
    assert "raw_gcp_keyfile" not in doc.get("variable", {})


def test_expose_creates_latest_state_view_authorized_on_raw_dataset(stack):
    _, sink = _pipeline(stack)
    finance = MicroWarehouse(
        stack,
        "finance",
        owners=[Principal.group("fin-eng@acme.com")],
        readers=[Principal.group("fin@acme.com")],
        retention=timedelta(days=365),
    )
    view = finance.expose(sink.table("orders"))
    doc = synth_stack(stack)
    views = [t for t in resources(doc, "google_bigquery_table") if "view" in t]
    assert len(views) == 1
    assert views[0]["view"][0]["use_legacy_sql"] is False
    sql = views[0]["view"][0]["query"]
    assert sql == view.sql
    parsed = sqlglot.parse_one(sql, read="bigquery")
    assert parsed.find(sqlglot.exp.Window) is not None
    assert "PARTITION BY `id` ORDER BY `_kafka`.`offset` DESC" in sql
    assert "FROM `acme-data.shop_raw.shop_shop_orders__state`" in sql
    assert "FROM `acme-data.shop_raw.shop_shop_orders`\n    WHERE (_PARTITIONTIME IS NULL OR" in sql
    assert "IFNULL(`__deleted`, 'false') != 'true'" in sql
    assert "EXCEPT" not in sql, "a column added later never reaches the view by itself"
    assert "  `id`,\n  CAST(`amount` AS NUMERIC) AS `amount`,\n  `email`\nFROM" in sql
    assert "ERROR('shop_shop_orders: no compaction finished in 300 minutes" in sql
    authorized = [a for a in resources(doc, "google_bigquery_dataset_access") if "view" in a]
    assert len(authorized) == 1
    assert authorized[0]["view"][0]["project_id"] == "acme-data"
    assert authorized[0]["dataset_id"].startswith("${google_bigquery_dataset.raw_dataset")
    roles = sorted(
        (a.get("role"), a.get("group_by_email"))
        for a in resources(doc, "google_bigquery_dataset_access")
        if a.get("group_by_email")
    )
    assert roles == [("OWNER", "fin-eng@acme.com"), ("READER", "fin@acme.com")]


def test_expose_with_columns_selects_only_them(stack):
    _, sink = _pipeline(stack)
    risk = MicroWarehouse(stack, "risk", owners=[Principal.group("risk@acme.com")])
    view = risk.expose(sink.table("orders"), columns=["id", "amount"])
    assert "SELECT\n  `id`,\n  CAST(`amount` AS NUMERIC) AS `amount`\nFROM" in view.sql
    with pytest.raises(DatapipeError, match=r"columns not carried by shop\.orders"):
        risk.expose(sink.table("orders"), columns=["nope"], name="orders2")


def test_postgres_views_order_by_offset_and_cast_back_to_source_types():
    stack = make_stack()
    source = CdcSource(
        stack,
        "pg",
        engine="postgresql",
        host="db",
        database="shop",
        schema="public",
        tables={
            "orders": Table(
                ["id"],
                [
                    Column("id", ColumnType.INT64),
                    Column("at", ColumnType.TIME),
                    Column("on", ColumnType.DATE),
                    Column("ok", ColumnType.BOOL),
                    Column("price", ColumnType.NUMERIC, precision=20, scale=6),
                    Column("any", ColumnType.NUMERIC),
                    Column("tags", ColumnType.STRING, repeated=True),
                ],
            )
        },
        topic_prefix="pg",
    )
    sink = BigQuerySink(stack, "raw", source=source, dataset="pg_raw")
    wh = MicroWarehouse(stack, "wh", owners=[Principal.group("o@acme.com")])
    sql = wh.expose(sink.table("orders")).sql
    sqlglot.parse_one(sql, read="bigquery")
    assert "ORDER BY `_kafka`.`offset` DESC" in sql
    assert "`__lsn`" in sql and "`__sequence`" in sql  # kept for diagnosis
    assert "TIME_ADD(TIME '00:00:00', INTERVAL `at` MICROSECOND), NULL) AS `at`" in sql
    assert "`at` AS `at__micros`" in sql
    assert "DATE_FROM_UNIX_DATE(`on`) AS `on`" in sql
    assert "  `ok`,\n" in sql, "a PostgreSQL boolean arrives as one"
    assert "CAST(`price` AS NUMERIC) AS `price`" in sql
    assert "  `any`,\n" in sql, "an unconstrained numeric (up to 131072 digits) stays its exact text"
    assert "  `tags`\nFROM" in sql


def test_add_view_renders_refs_and_depends_on_them(stack):
    _, sink = _pipeline(stack)
    wh = MicroWarehouse(stack, "finance", owners=[Principal.group("o@acme.com")])
    wh.expose(sink.table("orders"))
    view = wh.add_view("big_orders", "SELECT id FROM {{ ref('orders') }} WHERE amount > 100")
    assert view.sql == "SELECT id FROM `acme-data.finance.orders` WHERE amount > 100\n"
    sqlglot.parse_one(view.sql, read="bigquery")
    doc = synth_stack(stack)
    big = next(t for t in resources(doc, "google_bigquery_table") if t["table_id"] == "big_orders")
    assert any("finance_view-orders" in d for d in big["depends_on"])
    with pytest.raises(DatapipeError, match="ref\\(\\) names an unknown view"):
        wh.add_view("bad", "SELECT 1 FROM {{ ref('nope') }}")


def test_grant_query_until_compiles_to_iam_condition(stack):
    wh = MicroWarehouse(stack, "finance", owners=[Principal.group("o@acme.com")])
    wh.grant_query(Principal.user("auditor@acme.com"), until=datetime(2030, 3, 31, 12, tzinfo=UTC))
    doc = synth_stack(stack)
    access = next(a for a in resources(doc, "google_bigquery_dataset_access") if a.get("user_by_email") == "auditor@acme.com")
    assert access["role"] == "READER"
    assert access["condition"][0]["expression"] == 'request.time < timestamp("2030-03-31T12:00:00Z")'
    [job_user] = resources(doc, "google_project_iam_member")
    assert job_user["member"] == "user:auditor@acme.com"
    assert job_user["condition"][0]["expression"] == access["condition"][0]["expression"]


def test_public_access_is_refused_unless_allowed(stack):
    wh = MicroWarehouse(stack, "finance", owners=[Principal.group("o@acme.com")])
    with pytest.raises(DatapipeError, match="public principals need allow_public=True"):
        wh.grant_query(Principal.all_users())
    with pytest.raises(DatapipeError, match="readers must not be public"):
        MicroWarehouse(stack, "open", owners=[Principal.group("o@acme.com")], readers=[Principal.all_authenticated_users()])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "bad-name"}, "dataset must be a BigQuery dataset id"),
        ({"owners": []}, "a warehouse needs at least one owner"),
        ({"labels": {"Team": "x"}}, "label key must be lowercase"),
        ({"retention": timedelta(minutes=5)}, "retention must be longer than"),
        ({"readers": [Principal.kafka_user("x")]}, "readers must be Google identities"),
    ],
)
def test_bad_warehouse_input(stack, kwargs, message):
    args = {"owners": [Principal.group("o@acme.com")], **kwargs}
    with pytest.raises(DatapipeError, match=message):
        MicroWarehouse(stack, "wh", **args)
    assert stack.node.try_find_child("wh") is None


def test_table_without_primary_key_cannot_be_exposed(stack):
    source, _ = _pipeline(stack)
    sink = BigQuerySink(stack, "raw2", source=source, dataset="shop_raw2", tables=["events"])
    wh = MicroWarehouse(stack, "wh", owners=[Principal.group("o@acme.com")])
    with pytest.raises(DatapipeError, match="has no known primary key"):
        wh.expose(sink.table("events"))


def test_duplicate_dataset_is_refused(stack):
    _pipeline(stack)
    with pytest.raises(DatapipeError, match="dataset is already used in this stack by test/raw"):
        MicroWarehouse(stack, "wh", owners=[Principal.group("o@acme.com")], dataset="shop_raw")
