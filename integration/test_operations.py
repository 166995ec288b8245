"""Snapshots and replays as commands, live on the local stack, driven only through the ``datapipe`` CLI.

One app (a MariaDB source with ``items`` and ``audit``, a PostgreSQL source with ``notes``, a sink each, one
warehouse) is deployed once; the tests then, in order: add a table to each running source (``extras``,
``tags``: only their rows are read, by incremental snapshots that ``datapipe deploy`` signals), re-read one
table with ``datapipe snapshot --table``, pause and resume a source, and replay dead-lettered records with
``datapipe dlq replay``.
"""

from __future__ import annotations

import copy
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.local import bigquery, databases, kafka
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.manifest import Manifest
from integration import flow
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

APP = """
import os
from datapipe_cdk import App
from datapipe_cdk import (BigQuerySink, CdcSource, Column, ColumnType, ConnectCluster, DataPipelineStack, GcpProject,
                          KafkaCluster, MicroWarehouse, Principal, Table)

OWNER = Principal.group("ops@ops.example")
ITEMS = Table(["id"], [Column("id", ColumnType.INT64), Column("name"), Column("qty", ColumnType.INT64),
                       Column("seen_at", ColumnType.DATETIME)])
AUDIT = Table(["id"], [Column("id", ColumnType.INT64), Column("what")])
EXTRAS = Table(["id"], [Column("id", ColumnType.INT64), Column("note")])
NOTES = Table(["id"], [Column("id", ColumnType.INT64), Column("body")])
TAGS = Table(["id"], [Column("id", ColumnType.INT64), Column("tag")])


def build(outdir):
    app = App(outdir=outdir)
    stack = DataPipelineStack(app, "ops", kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="deployer"),
        connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="d"),
        gcp=GcpProject(project="ops-data-prod", allowed_domains=["ops.example"]))
    more = os.environ.get("OPS_EXTRAS") == "1"
    tables = {"items": ITEMS, "audit": AUDIT} | ({"extras": EXTRAS} if more else {})
    source = CdcSource(stack, "ops-db", engine="mariadb", host="db", database="opsdb", tables=tables, owner=OWNER)
    pg_tables = {"notes": NOTES} | ({"tags": TAGS} if more else {})
    pg = CdcSource(stack, "ops-pg", engine="postgresql", host="pg", database="opsdb", schema="ops", tables=pg_tables,
                   owner=OWNER)
    raw = BigQuerySink(stack, "ops-raw", source=source, dataset="ops_raw", owners=[OWNER])
    pg_raw = BigQuerySink(stack, "ops-pg-raw", source=pg, dataset="ops_pg_raw", owners=[OWNER])
    warehouse = MicroWarehouse(stack, "ops-wh", owners=[OWNER], dataset="ops_wh")
    for sink, names in ((raw, tables), (pg_raw, pg_tables)):
        for name in names:
            warehouse.expose(sink.table(name))
    return app
"""
DDL = """
CREATE DATABASE IF NOT EXISTS opsdb;
CREATE TABLE opsdb.items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(60), qty BIGINT, seen_at DATETIME(6));
CREATE TABLE opsdb.audit (id BIGINT NOT NULL PRIMARY KEY, what VARCHAR(60));
CREATE TABLE opsdb.extras (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(60));
INSERT INTO opsdb.items VALUES (1, 'one', 1, '2024-01-01 00:00:01'), (2, 'two', 2, '2024-01-01 00:00:02'),
                               (3, 'three', 3, '2024-01-01 00:00:03');
INSERT INTO opsdb.audit VALUES (1, 'created'), (2, 'created');
INSERT INTO opsdb.extras VALUES (1, 'x1'), (2, 'x2'), (3, 'x3');
"""
PG_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE ops.notes (id BIGINT NOT NULL PRIMARY KEY, body TEXT);
CREATE TABLE ops.tags (id BIGINT NOT NULL PRIMARY KEY, tag TEXT);
INSERT INTO ops.notes VALUES (1, 'n1'), (2, 'n2');
INSERT INTO ops.tags VALUES (1, 't1'), (2, 't2');
"""
TOPIC = "ops-db.opsdb.items"
SETTLE_S = 15.0
"""How long a flow that must stay silent is watched (the sink flushes within seconds)."""


class Ops:
    """The deployed app: its CLI arguments, the variant it is deployed as, and its tables."""

    def __init__(self, cfg: StackConfig, project: Path) -> None:
        self.cfg = cfg
        self.project = project
        self.args = ["--local", "--app", str(project / "app.py"), "--out", str(project / "cdktf.out")]
        self.env = {"OPS_EXTRAS": "0"}
        self.client = bigquery.client(cfg)

    def run(self, *command: str, check: bool = True) -> Any:
        return datapipe(*command, *self.args, check=check, env=self.env)

    @property
    def manifest(self) -> Manifest:
        doc = json.loads((self.project / "cdktf.out" / "stacks" / "ops" / "cdk.tf.json").read_text())
        return Manifest.from_dict(doc["output"]["datapipe_manifest"]["value"])

    def changelog(self, table: str) -> str:
        found = next((s.dataset, t.table) for s in self.manifest.sinks for t in s.tables if t.source_table == table)
        return f"`{bigquery.PROJECT}.{found[0]}.{found[1]}`"

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return [dict(r.items()) for r in self.client.query_and_wait(sql)]

    def reads(self, table: str) -> int:
        """Snapshot events (``__op = 'r'``) in a table's changelog: how often its rows were read."""
        return int(self.rows(f"SELECT COUNT(*) AS n FROM {self.changelog(table)} WHERE __op = 'r'")[0]["n"])

    def view(self, table: str) -> dict[int, dict[str, Any]]:
        return {int(r["id"]): r for r in self.rows(f"SELECT * FROM `{bigquery.PROJECT}.ops_wh.{table}`")}

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        conn = databases.mariadb_connect(self.cfg, database="opsdb")
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def ops(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    project = tmp_path_factory.mktemp("operations")
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "ddl.sql").write_text(DDL)
    (project / "pg.sql").write_text(PG_DDL)
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(project / "ddl.sql"))
    datapipe("local", "sql", "--engine", "postgres", "--database", "opsdb", "-f", str(project / "pg.sql"))
    app = Ops(local_stack, project)
    app.run("deploy", "--auto-approve")
    try:
        counts = {"items": 3, "audit": 2, "notes": 2}
        flow.wait_for(lambda: all(len(app.view(t)) == n for t, n in counts.items()), 240, "the initial snapshots")
        yield app
    finally:
        app.run("destroy", "--auto-approve", check=False)


def test_a_table_added_to_a_running_source_is_read_alone(ops: Ops) -> None:
    """``extras`` (MariaDB) and ``tags`` (PostgreSQL) exist with rows before they are captured; adding them reads
    exactly those rows (incremental snapshots signalled by deploy), and the other tables are not read again."""
    before = {t: ops.reads(t) for t in ("items", "audit", "notes")}
    assert before == {"items": 3, "audit": 2, "notes": 2}
    ops.env = {"OPS_EXTRAS": "1"}
    done = ops.run("deploy", "--auto-approve")
    for table, source in (("extras", "ops-db"), ("tags", "ops-pg")):
        assert f"{table} added to running source {source}: incremental snapshot requested" in done.stderr, done.stderr[-3000:]
    expected = {"extras": ("note", {1: "x1", 2: "x2", 3: "x3"}), "tags": ("tag", {1: "t1", 2: "t2"})}
    for table, (column, rows) in expected.items():
        landed = lambda t=table, c=column, want=rows: {k: r[c] for k, r in ops.view(t).items()} == want  # noqa: E731
        flow.wait_for(landed, 240, f"{table} in its view")
        snapshot = ops.rows(f"SELECT __op, __snapshot, COUNT(*) AS n FROM {ops.changelog(table)} GROUP BY __op, __snapshot")
        assert snapshot == [{"__op": "r", "__snapshot": "incremental", "n": len(rows)}], (table, snapshot)
    time.sleep(SETTLE_S)
    assert {t: ops.reads(t) for t in ("items", "audit", "notes")} == before


def test_datapipe_snapshot_re_reads_one_table(ops: Ops) -> None:
    before = {t: ops.reads(t) for t in ("items", "audit", "notes", "tags")}
    done = ops.run("snapshot", "--table", "ops-db.items", "--table", "ops-pg.notes")
    assert "incremental snapshot of items requested from source ops-db" in done.stdout, done.stdout
    assert "incremental snapshot of notes requested from source ops-pg" in done.stdout, done.stdout
    after = {**before, "items": before["items"] + 3, "notes": before["notes"] + 2}
    flow.wait_for(lambda: {t: ops.reads(t) for t in after} == after, 180, f"items and notes read again: {after}")
    time.sleep(SETTLE_S)
    assert {t: ops.reads(t) for t in after} == after


def test_pause_stops_the_flow_and_resume_restarts_it(ops: Ops) -> None:
    from datapipe_cdk.deploy import Runner, StackDir

    done = ops.run("pause", "ops-db")
    assert "connector ops-db is PAUSED" in done.stdout and "the next `datapipe deploy`" in done.stdout, done.stdout
    drift = Runner(local=True, log=lambda _: None).run_state_drift(StackDir.read(ops.project / "cdktf.out", "ops"))
    assert drift == ["connector ops-db is PAUSED (tasks: PAUSED)"]  # what `datapipe plan` reports
    ops.sql("INSERT INTO items VALUES (10, 'ten', 10, '2024-01-01 00:00:10')")
    time.sleep(SETTLE_S)
    assert 10 not in ops.view("items")
    done = ops.run("resume", "ops-db")
    assert "connector ops-db is RUNNING" in done.stdout, done.stdout
    flow.wait_for(lambda: 10 in ops.view("items"), 120, "the row written while paused")


def _event(cfg: StackConfig, item: int) -> dict[str, Any]:
    """The newest change event of ``items`` row ``item`` as Debezium wrote it (schema and payload)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(flow.kafka_config(cfg, kafka.ADMIN, **{"group.id": f"ops-test-{time.time_ns()}"}))
    events = []
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
        consumer.assign([TopicPartition(TOPIC, 0, low)])
        offset, deadline = low, time.monotonic() + 60
        while offset < high - 1 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            offset = message.offset()
            value = json.loads(message.value()) if message.value() else None
            if value and (value["payload"].get("after") or {}).get("id") == item:
                events.append(value)
    finally:
        consumer.close()
    assert events, f"no change event of item {item} in {TOPIC}"
    return copy.deepcopy(events[-1])


def _produce(cfg: StackConfig, records: list[tuple[int, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(flow.kafka_config(cfg, kafka.ADMIN))
    for item, value in records:
        key = {"schema": {"type": "struct", "name": f"{TOPIC}.Key", "optional": False,
                          "fields": [{"type": "int64", "optional": False, "field": "id"}]}, "payload": {"id": item}}  # fmt: skip
        producer.produce(TOPIC, key=json.dumps(key).encode(), value=value)
    assert producer.flush(30) == 0


def _republished(event: dict[str, Any], **changes: Any) -> bytes:
    """The event re-published the way a script or kcat writes it: the payload alone, an update with ``changes``."""
    payload = event["payload"]
    payload.update(before=payload["after"], after={**payload["after"], **changes}, op="u")
    payload["source"]["ts_ms"] = int(time.time() * 1000)
    return json.dumps(payload).encode()


def test_a_dead_lettered_record_replayed_reaches_the_view_in_its_place(ops: Ops) -> None:
    """Why this dead letter is realistic: a change re-published into a CDC topic by hand or by a script (to restore
    an event lost in an incident, with kcat or a few lines of Python) is usually plain JSON, the payload without
    Connect's ``schema``/``payload`` envelope. The sink's JsonConverter (``schemas.enable=true``) refuses it at the
    converter stage, which ``errors.tolerance=all`` covers: the record goes to ``dlq.ops-raw`` and the row stays
    stale in the views, silently. Once the script is fixed, the records already dead-lettered are replayed.

    A second record carries its envelope but a DATETIME typed as text: the sink's Cast to int64 fails (the
    transform stage), and replay, applying the same Cast, reports it and does not skip it.

    Ordering: item 1 is re-published, then really updated at the source. Replayed at its original offset, the
    re-published (older) change must not outrank the newer one; item 2 has no newer change, so its replayed
    change becomes the current row.
    """
    from datapipe_cdk.runtime.credentials import load_credentials
    from datapipe_cdk.runtime.sink_health import dead_letters

    cfg, manifest = ops.cfg, ops.manifest
    bad = _event(cfg, 3)
    for side in ("before", "after"):
        fields = next(f for f in bad["schema"]["fields"] if f["field"] == side)["fields"]
        typed = next(f for f in fields if f["field"] == "seen_at")
        typed.update(type="string")
        typed.pop("name", None)
        typed.pop("version", None)
    bad["payload"].update(
        op="u", before=bad["payload"]["after"], after={**bad["payload"]["after"], "seen_at": "2024-01-01 10:00:00"}
    )
    _produce(cfg, [(2, _republished(_event(cfg, 2), name="two-restored")), (1, _republished(_event(cfg, 1), name="one-old")),
                   (3, json.dumps(bad).encode())])  # fmt: skip
    ops.sql("UPDATE items SET name = 'one-newest' WHERE id = 1")
    login = load_credentials().kafka
    letters = flow.wait_for(lambda: (found := dead_letters(manifest.kafka, login, "dlq.ops-raw")) and len(found) == 3 and found,
                            120, "three dead letters")  # fmt: skip
    assert "schema" in letters[0].reason.lower() and "out of range" in letters[2].reason.lower(), [d.reason for d in letters]
    flow.wait_for(lambda: ops.view("items")[1]["name"] == "one-newest", 120, "the newer change of item 1")
    assert ops.view("items")[2]["name"] == "two"  # stale: its change is dead-lettered

    done = ops.run("dlq", "replay", "--sink", "ops-raw", "--json", check=False)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and (report["delivered"], report["failed"]) == (2, 1), done.stdout
    failed = report["records"][2]
    assert failed["status"] == "failed" and "Cast of seen_at to int64 fails" in failed["detail"], failed
    assert report["committed"] == {"0": failed["dlq_offset"]}  # stops at the failure: the next replay reads it again
    view = ops.view("items")
    assert (view[1]["name"], view[2]["name"], view[3]["name"]) == ("one-newest", "two-restored", "three")
    placed = ops.rows(f"SELECT _kafka.offset AS o FROM {ops.changelog('items')} WHERE name = 'two-restored'")
    assert placed == [{"o": letters[0].offset}]  # the original offset in the source topic

    again = json.loads(ops.run("dlq", "replay", "--sink", "ops-raw", "--json", check=False).stdout)
    assert (again["delivered"], again["failed"]) == (0, 1), again  # replayed once; the failure is reported again
    assert len(ops.rows(f"SELECT 1 FROM {ops.changelog('items')} WHERE name = 'two-restored'")) == 1
