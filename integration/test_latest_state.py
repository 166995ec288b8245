"""Latest state that stays true, on the real local stack, for MariaDB and PostgreSQL alike.

An app outside the repository (3 partitions per topic, composite keys, every reference column type with
its edge values, a key-only table) is deployed with ``datapipe deploy --local``; then the suite does what
real tables live through, and after each step compares every view with its source, row by row and value
by value, with the quality checks' own reconciliation (:mod:`datapipe_cdk.runtime.reconcile`):

1. the initial snapshot, with a transaction left open across it and committed after it;
2. a primary-key update, a delete then re-insert of the same key, thousands of updates to one key, new
   edge rows, NULLs and empty strings; on MariaDB a binlog rotation (``FLUSH BINARY LOGS``) mid-stream;
3. ``datapipe compact``; then every changelog row deleted (every partition expired): the views still
   equal the sources, and keep doing so through further changes;
4. a compaction outage longer than the window: the views fail loudly instead of missing changes, and the
   next compaction catches up;
5. the quality reconciliation fails when a single stored value differs.

It also measures what a view reads before and after compaction for a table with 100x more history than
rows (the emulator reports no bytes: rows entering the view and query time are recorded in
``<run>/reports/latest-state.json``).
"""

from __future__ import annotations

import json
import statistics
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datapipe_cdk.local import bigquery, databases
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.manifest import Manifest, Pipe
from datapipe_cdk.runtime.credentials import load_credentials
from datapipe_cdk.runtime.quality import FAIL, run_quality
from datapipe_cdk.runtime.reconcile import Reconciliation, reconcile
from datapipe_cdk.runtime.source import SourceDatabase
from datapipe_cdk.runtime.warehouse import WarehouseClient
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

STACK = "adversarial"
UPDATES_OF_ONE_KEY = 1000
HISTORY_ROWS, HISTORY_FACTOR = 20, 100
SETTLE_S = 420.0

APP = '''
"""Adversarial tables: every reference type, composite keys, 3 partitions, a key-only table."""
from datapipe_cdk import App

from datapipe_cdk import (BigQuerySink, CdcSource, Column, ColumnType as T, ConnectCluster, DataPipelineStack,
                          GcpProject, KafkaCluster, MicroWarehouse, Principal, Table)
from datapipe_cdk.governance import opt_out

OWNER = Principal.group("data@adv.example")
ORDERS = Table(["tenant", "order_no"], [Column("tenant"), Column("order_no", T.INT64), Column("note"),
                                         Column("counter", T.INT64)])
HISTORY = Table(["id"], [Column("id", T.INT64), Column("version", T.INT64), Column("payload")])
MARIA_TYPES = Table(["id", "at"], [
    Column("id", T.INT64), Column("at", T.DATETIME), Column("c_bool", T.BOOL), Column("c_tinyint", T.INT64),
    Column("c_tinyint_u", T.INT64), Column("c_smallint", T.INT64), Column("c_smallint_u", T.INT64),
    Column("c_mediumint", T.INT64), Column("c_int", T.INT64), Column("c_int_u", T.INT64), Column("c_bigint", T.INT64),
    Column("c_bigint_u", T.UINT64), Column("c_dec18", T.NUMERIC, precision=18, scale=4),
    Column("c_dec65", T.NUMERIC, precision=65, scale=30), Column("c_float", T.FLOAT64), Column("c_double", T.FLOAT64),
    Column("c_date", T.DATE), Column("c_time", T.TIME), Column("c_datetime", T.DATETIME),
    Column("c_timestamp", T.TIMESTAMP), Column("c_year", T.INT64), Column("c_char"), Column("c_varchar"),
    Column("c_text"), Column("c_enum"), Column("c_set"), Column("c_json", T.JSON), Column("c_binary", T.BYTES),
    Column("c_varbinary", T.BYTES), Column("c_blob", T.BYTES), Column("c_bit1", T.BOOL), Column("c_bit8", T.BYTES),
])
PG_TYPES = Table(["id", "at"], [
    Column("id", T.INT64), Column("at", T.DATETIME), Column("c_bool", T.BOOL), Column("c_smallint", T.INT64),
    Column("c_int", T.INT64), Column("c_bigint", T.INT64), Column("c_num20", T.NUMERIC, precision=20, scale=6),
    Column("c_num", T.NUMERIC), Column("c_real", T.FLOAT64), Column("c_double", T.FLOAT64), Column("c_date", T.DATE),
    Column("c_time", T.TIME), Column("c_ts", T.DATETIME), Column("c_tstz", T.TIMESTAMP), Column("c_interval", T.INTERVAL),
    Column("c_uuid"), Column("c_text"), Column("c_varchar"), Column("c_jsonb", T.JSON), Column("c_json", T.JSON),
    Column("c_text_arr", T.STRING, repeated=True), Column("c_int_arr", T.INT64, repeated=True),
    Column("c_bytea", T.BYTES), Column("c_inet"),
])


def build(outdir: str) -> App:
    app = App(outdir=outdir)
    stack = DataPipelineStack(
        app, "adversarial",
        kafka=KafkaCluster(bootstrap_servers=["kafka.adv.example:9093"], brokers=3, sasl_username="deployer"),
        connect=ConnectCluster(url="https://connect.adv.example", principal=Principal.kafka_user("connect"),
                               basic_auth_username="deployer"),
        gcp=GcpProject(project="adv-data-prod", location="EU"),
    )
    maria = CdcSource(stack, "adv-maria", engine="mariadb", host="maria.adv.example", database="adv", partitions=3,
                      tables={"types": MARIA_TYPES, "orders": ORDERS, "history": HISTORY, "keyonly": Table(["id"])},
                      owner=OWNER)
    opt_out(maria, "columns-declared", "the key-only form is part of what this suite proves")
    pg = CdcSource(stack, "adv-pg", engine="postgresql", host="pg.adv.example", database="adv", schema="adv",
                   partitions=3, tables={"types": PG_TYPES, "orders": ORDERS}, owner=OWNER)
    maria_raw = BigQuerySink(stack, "maria-raw", source=maria, dataset="adv_maria_raw", owners=[OWNER])
    pg_raw = BigQuerySink(stack, "pg-raw", source=pg, dataset="adv_pg_raw", owners=[OWNER])
    wh = MicroWarehouse(stack, "adv-wh", owners=[OWNER], dataset="adv_wh")
    for table in ("types", "orders", "history", "keyonly"):
        wh.expose(maria_raw.table(table), name=f"maria_{table}")
    for table in ("types", "orders"):
        wh.expose(pg_raw.table(table), name=f"pg_{table}")
    return app
'''

MARIA_DDL = """
CREATE DATABASE IF NOT EXISTS adv CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE TABLE adv.types (
  id INT NOT NULL, at DATETIME(6) NOT NULL,
  c_bool BOOL, c_tinyint TINYINT, c_tinyint_u TINYINT UNSIGNED, c_smallint SMALLINT, c_smallint_u SMALLINT UNSIGNED,
  c_mediumint MEDIUMINT, c_int INT, c_int_u INT UNSIGNED, c_bigint BIGINT, c_bigint_u BIGINT UNSIGNED,
  c_dec18 DECIMAL(18,4), c_dec65 DECIMAL(65,30), c_float FLOAT, c_double DOUBLE, c_date DATE, c_time TIME(6),
  c_datetime DATETIME(6), c_timestamp TIMESTAMP(6) NULL DEFAULT NULL, c_year YEAR, c_char CHAR(10),
  c_varchar VARCHAR(200), c_text TEXT, c_enum ENUM('a','b','c'), c_set SET('x','y','z'), c_json JSON,
  c_binary BINARY(4), c_varbinary VARBINARY(16), c_blob BLOB, c_bit1 BIT(1), c_bit8 BIT(8),
  PRIMARY KEY (id, at)
);
CREATE TABLE adv.orders (tenant VARCHAR(20) NOT NULL, order_no BIGINT NOT NULL, note VARCHAR(200), counter BIGINT,
  PRIMARY KEY (tenant, order_no));
CREATE TABLE adv.history (id BIGINT NOT NULL PRIMARY KEY, version BIGINT NOT NULL, payload VARCHAR(100));
CREATE TABLE adv.keyonly (id BIGINT NOT NULL PRIMARY KEY, secret_note VARCHAR(100));
"""

PG_DDL = """
CREATE SCHEMA IF NOT EXISTS adv;
CREATE TABLE adv.types (
  id int NOT NULL, at timestamp(6) NOT NULL,
  c_bool boolean, c_smallint smallint, c_int integer, c_bigint bigint, c_num20 numeric(20,6), c_num numeric,
  c_real real, c_double double precision, c_date date, c_time time(6), c_ts timestamp(6), c_tstz timestamptz(6),
  c_interval interval, c_uuid uuid, c_text text, c_varchar varchar(200), c_jsonb jsonb, c_json json,
  c_text_arr text[], c_int_arr integer[], c_bytea bytea, c_inet inet,
  PRIMARY KEY (id, at)
);
CREATE TABLE adv.orders (tenant varchar(20) NOT NULL, order_no bigint NOT NULL, note varchar(200), counter bigint,
  PRIMARY KEY (tenant, order_no));
"""

MARIA_COLUMNS = (
    "id, at, c_bool, c_tinyint, c_tinyint_u, c_smallint, c_smallint_u, c_mediumint, c_int, c_int_u, c_bigint, c_bigint_u, "
    "c_dec18, c_dec65, c_float, c_double, c_date, c_time, c_datetime, c_timestamp, c_year, c_char, c_varchar, c_text, "
    "c_enum, c_set, c_json, c_binary, c_varbinary, c_blob, c_bit1, c_bit8"
)
MARIA_ROWS = [
    # max values (and a DECIMAL(65,30) of 65 digits)
    "(1, '2024-01-15 12:34:56.000000', 1, 127, 255, 32767, 65535, 8388607, 2147483647, 4294967295, 9223372036854775807, "
    "18446744073709551615, 99999999999999.9999, " + "9" * 35 + "." + "9" * 30 + ", 3.40282e38, 1.7976931348623157e308, "
    "'9999-12-31', '838:59:59.999999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 2155, 'abcdefghij', "
    "REPEAT('😀', 200), REPEAT('ñ', 5000), 'c', 'x,y,z', '{\"a\": 2.50, \"big\": 12345678901234567890}', x'FFFFFFFF', "
    "x'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF', x'00FF00FF', b'1', b'11111111')",
    # min values
    "(2, '2024-01-15 12:34:56.000000', 0, -128, 0, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0, "
    "-99999999999999.9999, -" + "9" * 35 + "." + "9" * 30 + ", -3.40282e38, -1.7976931348623157e308, '1000-01-01', "
    "'-838:59:59.999999', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', 1901, '', '', '', 'a', '', "
    "'[]', x'00000000', x'', x'', b'0', b'00000000')",
    # small values: 0.0001, microseconds, 1e-30
    "(3, '2024-01-15 12:34:56.000000', 0, 0, 1, 0, 1, 0, 0, 1, -1, 9223372036854775808, 0.0001, "
    "0.000000000000000000000000000001, 1.17549e-38, 5e-324, '1969-12-31', '00:00:00.000005', "
    "'1969-12-31 23:59:59.999999', '2024-01-15 12:34:56.000005', 1970, 'a', ' padded  ', 'tab\\there \"quoted\" back\\\\slash', "
    "'b', 'y', 'null', x'00010203', x'00', x'0001', b'1', b'10000001')",
    # NULL in every nullable column
    "(4, '2024-01-15 12:34:56.000000'" + ", NULL" * 30 + ")",
    # two keys 500 microseconds apart (a DATETIME(6) in the key)
    "(5, '2024-01-15 12:34:56.000000', 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.0001, 1, -1.5, -0.5, '2000-02-29', "
    "'12:34:56.500000', '2024-01-15 12:34:56.500000', '2024-01-15 12:34:56.500000', 2000, '中文', '日本語テキスト', "
    "'한국어 😀🎉', 'a', 'x', '\"a string\"', x'01020304', x'0102', x'03', b'0', b'01111111')",
    "(5, '2024-01-15 12:34:56.000500', 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0.0002, 2, 1.5, 0.5, '2000-03-01', "
    "'12:34:56.500500', '2024-01-15 12:34:56.500500', '2024-01-15 12:34:56.500500', 2001, 'b', 'b', 'b', 'b', 'z', "
    "'{}', x'05060708', x'0506', x'07', b'1', b'00000001')",
]

PG_COLUMNS = (
    "id, at, c_bool, c_smallint, c_int, c_bigint, c_num20, c_num, c_real, c_double, c_date, c_time, c_ts, c_tstz, "
    "c_interval, c_uuid, c_text, c_varchar, c_jsonb, c_json, c_text_arr, c_int_arr, c_bytea, c_inet"
)
PG_ROWS = [
    "(1, '2024-01-15 12:34:56', true, 32767, 2147483647, 9223372036854775807, 99999999999999.999999, "
    "3.14159265358979323846264338327950288419716939937510, 3.4028235e38, 1.7976931348623157e308, '9999-12-31', "
    "'23:59:59.999999', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00', "
    "'1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', repeat('😀', 300), repeat('ñ', 200), "
    '\'{"a": 2.50, "big": 12345678901234567890}\', \'{"dup": 1, "dup": 2,  "ws" : true}\', '
    "'{a,\"b,c\",é😀}', '{-2147483648,2147483647}', '\\x00ff00ff', '192.168.1.0/24')",
    "(2, '2024-01-15 12:34:56', false, -32768, -2147483648, -9223372036854775808, -99999999999999.999999, "
    "-123456789012345678901234567890123456789012345678901234567890.123456789012345678901234567890, -3.4028235e38, "
    "-1.7976931348623157e308, '0001-01-01', '00:00:00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', "
    "'-1 mons -2 days -00:00:00.000001', '00000000-0000-0000-0000-000000000000', '', '', '{}', '[]', '{}', '{}', "
    "'\\x', '::1')",
    "(3, '2024-01-15 12:34:56', true, 0, 0, -1, 0.000001, 0.0000000000000000000000000000000000000001, 1.17549435e-38, "
    "5e-324, '1969-12-31', '24:00:00', '1969-12-31 23:59:59.999999', '2024-01-15 14:34:56.000005+02', "
    "'1000000 hours 30.000001 sec', 'ffffffff-ffff-ffff-ffff-ffffffffffff', ' padded  ', 'tab\there', 'null', "
    "'\"a string\"', '{\"\"}', '{0}', '\\x00', '2001:db8::1/64')",
    "(4, '2024-01-15 12:34:56'" + ", NULL" * 22 + ")",
    "(5, '2024-01-15 12:34:56', true, 1, 1, 1, 1.5, 1.5, -1.5, 0.1, '2000-02-29', '12:34:56.5', "
    "'2024-01-15 12:34:56.5', '1969-12-31 23:59:59.999999+00', '1 mon', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', "
    "'中文 한국어', '日本語', '[1, 2.0, \"x\"]', '{\"n\": 1.0000000000000000000001}', '{x,y}', '{1,2,3}', '\\x0102', "
    "'10.0.0.1')",
    "(5, '2024-01-15 12:34:56.0005', false, 2, 2, 2, 2.5, 2.5, 1.5, 0.2, '2000-03-01', '12:34:56.5005', "
    "'2024-01-15 12:34:56.5005', '2024-01-15 12:34:56.5005+00', '0.000001 sec', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', "
    "'b', 'b', '{}', '{}', '{}', '{}', '\\x03', '10.0.0.2')",
]


# --- helpers ------------------------------------------------------------------------------------


class Source:
    """One engine's admin connection for the scenario's writes."""

    def __init__(self, cfg: StackConfig, engine: str) -> None:
        self.cfg, self.engine = cfg, engine

    def run(self, *statements: str) -> None:
        if self.engine == "mariadb":
            conn = databases.mariadb_connect(self.cfg, database="adv")
            try:
                with conn.cursor() as cur:
                    cur.execute("SET time_zone = '+00:00'")
                    for statement in statements:
                        cur.execute(statement)
            finally:
                conn.close()
        else:
            with databases.postgres_connect(self.cfg, dbname="adv") as conn:
                conn.execute("SET TIME ZONE 'UTC'")
                for statement in statements:
                    conn.execute(statement)

    def many_updates(self, count: int, batch: int = 100) -> None:
        """``count`` updates of one key, ``batch`` per transaction (each a separate change event)."""
        done = 0
        while done < count:
            step = min(batch, count - done)
            update = "UPDATE adv.orders SET counter = counter + 1 WHERE tenant = 'hot' AND order_no = 1"
            self.run("BEGIN", *([update] * step), "COMMIT")
            done += step


class Warehouse:
    def __init__(self, cfg: StackConfig) -> None:
        self.client = bigquery.client(cfg)

    def query(self, sql: str) -> list[dict[str, Any]]:
        return [dict(row.items()) for row in self.client.query_and_wait(sql)]

    def run(self, sql: str) -> None:
        job = self.client.query(sql)
        job.result()


def _manifest(cfg: StackConfig) -> Manifest:
    path = cfg.run_dir / "manifests" / f"{STACK}.json"
    return Manifest.from_dict(json.loads(path.read_text()), str(path))


def _pipes(manifest: Manifest) -> dict[str, Pipe]:
    return {p.view.name: p for p in manifest.pipes() if p.view is not None}


def _reconcile_all(cfg: StackConfig, manifest: Manifest, names: list[str]) -> dict[str, Reconciliation]:
    credentials = load_credentials()
    wh = WarehouseClient(manifest.bigquery)
    found = {}
    pipes = _pipes(manifest)
    for name in names:
        pipe = pipes[name]
        with SourceDatabase(pipe.source, credentials.database(pipe.source)) as db:
            found[name] = reconcile(db, wh, pipe, db.columns(pipe.source_table.name))
    return found


def _until_equal(cfg: StackConfig, manifest: Manifest, names: list[str], step: str, timeout: float = SETTLE_S) -> dict[str, Any]:
    """Wait until every named view equals its source; fail with the differences otherwise."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    while True:
        found = _reconcile_all(cfg, manifest, names)
        if all(r.ok for r in found.values()):
            return {
                "step": step,
                "settled_s": round(time.monotonic() - began, 1),
                "views": {
                    n: {"rows": r.source_rows, "columns": len(r.compared_columns), "differences": 0} for n, r in found.items()
                },
            }
        if time.monotonic() > deadline:
            problems = {n: r.summary() for n, r in found.items() if not r.ok}
            raise AssertionError(f"{step}: views differ from their sources after {timeout:.0f}s: {problems}")
        time.sleep(5.0)


def _changelogs(manifest: Manifest) -> list[tuple[str, str]]:
    return [(s.dataset, t.table) for s in manifest.sinks for t in s.tables]


def _table(manifest: Manifest, dataset: str, table: str) -> str:
    return f"`{manifest.bigquery.project}.{dataset}.{table}`"


# --- the suite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adversarial(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app deployed with its schema and first rows, a transaction left open across the snapshot
    (committed once the snapshot landed); the local compactor stopped so compactions happen when the
    suite says. Destroyed at the end."""
    cfg = local_stack
    project = tmp_path_factory.mktemp("adversarial")
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "maria.sql").write_text(MARIA_DDL)
    (project / "pg.sql").write_text(PG_DDL)
    datapipe("local", "down", "--only", "compactor")
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(project / "maria.sql"))
    datapipe("local", "sql", "--engine", "postgres", "--database", "adv", "-f", str(project / "pg.sql"))
    maria, pg = Source(cfg, "mariadb"), Source(cfg, "postgres")
    maria.run(f"INSERT INTO adv.types ({MARIA_COLUMNS}) VALUES " + ", ".join(MARIA_ROWS))
    pg.run(f"INSERT INTO adv.types ({PG_COLUMNS}) VALUES " + ", ".join(PG_ROWS))
    for source in (maria, pg):
        source.run(
            "INSERT INTO adv.orders VALUES " + ", ".join(f"('t{n % 4}', {n}, 'first', 0)" for n in range(1, 41)),
            "INSERT INTO adv.orders VALUES ('hot', 1, 'one key, many updates', 0), ('pk', 1, 'will move', 0),"
            " ('again', 1, 'deleted then back', 0), ('open', 1, 'before the open transaction', 0)",
        )
    maria.run(
        "INSERT INTO adv.history VALUES " + ", ".join(f"({n}, 0, 'v0')" for n in range(1, HISTORY_ROWS + 1)),
        "INSERT INTO adv.keyonly VALUES (1, 'never leaves the database'), (2, NULL)",
    )

    # Transactions open across the snapshot: MariaDB's already wrote; PostgreSQL's writes once its slot exists.
    maria_open = databases.mariadb_connect(cfg, database="adv")
    maria_open.autocommit(False)
    with maria_open.cursor() as cur:
        cur.execute("UPDATE adv.orders SET note = 'written in a transaction open across the snapshot' WHERE tenant = 'open'")
    pg_open = databases.postgres_connect(cfg, dbname="adv")
    pg_open.autocommit = False
    pg_open.execute("SELECT 1")

    app = ["--local", "--app", str(project / "app.py"), "--out", str(project / "cdktf.out"), "--auto-approve"]
    datapipe("deploy", *app)
    try:
        manifest = _manifest(cfg)
        with databases.postgres_connect(cfg, dbname="adv") as admin:
            deadline = time.monotonic() + 120
            while not admin.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'adv%'").fetchone():
                assert time.monotonic() < deadline, "the PostgreSQL source never created its replication slot"
                time.sleep(1)
        pg_open.execute("UPDATE adv.orders SET note = 'written in a transaction open across the snapshot' WHERE tenant = 'open'")
        wh = Warehouse(cfg)

        def snapshot_landed(dataset: str, table: str, rows: int) -> bool:
            return int(wh.query(f"SELECT COUNT(*) AS n FROM {_table(manifest, dataset, table)}")[0]["n"]) >= rows

        deadline = time.monotonic() + SETTLE_S
        while not (
            snapshot_landed("adv_maria_raw", "adv_maria_adv_orders", 44)
            and snapshot_landed("adv_pg_raw", "adv_pg_adv_orders", 44)
        ):
            assert time.monotonic() < deadline, "the initial snapshots never reached the changelogs"
            time.sleep(3)
        maria_open.commit()
        pg_open.commit()
        yield {"cfg": cfg, "manifest": manifest, "maria": maria, "pg": pg, "wh": wh, "app": app, "report": []}
    finally:
        maria_open.close()
        pg_open.close()
        datapipe("destroy", *app, check=False)
        datapipe("local", "up", "--only", "compactor", check=False)


ALL_VIEWS = ["maria_types", "maria_orders", "maria_history", "maria_keyonly", "pg_types", "pg_orders"]


def _record(adv: dict[str, Any], entry: dict[str, Any]) -> None:
    adv["report"].append(entry)
    cfg: StackConfig = adv["cfg"]
    target = cfg.run_dir / "reports" / "latest-state.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(adv["report"], indent=2, default=str) + "\n")


def test_1_snapshot_and_a_transaction_open_across_it(adversarial: dict[str, Any]) -> None:
    entry = _until_equal(adversarial["cfg"], adversarial["manifest"], ALL_VIEWS, "snapshot + open transaction")
    rows = adversarial["wh"].query("SELECT note FROM `datapipe-local.adv_wh.pg_orders` WHERE tenant = 'open'")
    assert rows == [{"note": "written in a transaction open across the snapshot"}]
    keyonly = adversarial["wh"].query("SELECT * FROM `datapipe-local.adv_wh.maria_keyonly` ORDER BY id")
    assert keyonly == [{"id": "1"}, {"id": "2"}], "a key-only table carries its key, as text, and nothing else"
    _record(adversarial, entry)


def test_2_key_moves_reinserts_thousands_of_updates_and_binlog_rotation(adversarial: dict[str, Any]) -> None:
    maria, pg = adversarial["maria"], adversarial["pg"]
    for source in (maria, pg):
        source.run(
            "UPDATE adv.orders SET order_no = 1001, note = 'moved' WHERE tenant = 'pk' AND order_no = 1",
            "DELETE FROM adv.orders WHERE tenant = 'again' AND order_no = 1",
            "INSERT INTO adv.orders VALUES ('again', 1, 'reborn', 7)",
            "UPDATE adv.types SET c_text = NULL, c_varchar = '' WHERE id = 1",
            "UPDATE adv.types SET c_text = '', c_varchar = NULL WHERE id = 2",
            "DELETE FROM adv.orders WHERE tenant = 't0'",
        )
    maria.run("FLUSH BINARY LOGS")
    workers = [threading.Thread(target=s.many_updates, args=(UPDATES_OF_ONE_KEY,)) for s in (maria, pg)]
    for worker in workers:
        worker.start()
    maria.run("FLUSH BINARY LOGS")
    for worker in workers:
        worker.join()
    maria.run(
        "FLUSH BINARY LOGS",
        f"INSERT INTO adv.types ({MARIA_COLUMNS}) VALUES " + MARIA_ROWS[2].replace("(3,", "(6,", 1),
        "UPDATE adv.types SET c_time = '-00:00:00.000001', c_bigint_u = 18446744073709551614 WHERE id = 5",
    )
    pg.run(
        f"INSERT INTO adv.types ({PG_COLUMNS}) VALUES " + PG_ROWS[2].replace("(3,", "(6,", 1),
        "UPDATE adv.types SET c_time = '00:00:00.000001', c_num = 0 WHERE id = 5",
    )
    entry = _until_equal(adversarial["cfg"], adversarial["manifest"], ALL_VIEWS, "key moves, re-inserts, updates, rotation")
    hot = adversarial["wh"].query("SELECT counter FROM `datapipe-local.adv_wh.pg_orders` WHERE tenant = 'hot'")
    assert hot == [{"counter": UPDATES_OF_ONE_KEY}]
    _record(adversarial, entry)


def test_3_compaction_then_every_changelog_partition_expired(adversarial: dict[str, Any]) -> None:
    cfg, manifest, wh = adversarial["cfg"], adversarial["manifest"], adversarial["wh"]
    done = json.loads(datapipe("compact", "--json", *adversarial["app"][:-1]).stdout)["compacted"]
    assert {row["table"] for row in done} == {table for _, table in _changelogs(manifest)}
    _record(adversarial, _until_equal(cfg, manifest, ALL_VIEWS, "after compaction", timeout=30))
    for dataset, table in _changelogs(manifest):  # as if every partition had expired
        wh.run(f"DELETE FROM {_table(manifest, dataset, table)} WHERE TRUE")
    _record(adversarial, _until_equal(cfg, manifest, ALL_VIEWS, "every changelog row gone (expiry)", timeout=30))
    for source in (adversarial["maria"], adversarial["pg"]):
        source.run(
            "UPDATE adv.orders SET note = 'changed after expiry' WHERE tenant = 't1'",
            "DELETE FROM adv.orders WHERE tenant = 't2'",
            "DELETE FROM adv.types WHERE id = 2",
        )
    _record(adversarial, _until_equal(cfg, manifest, ALL_VIEWS, "changes after expiry"))


def test_4_a_compaction_outage_fails_loudly_and_the_next_compaction_catches_up(adversarial: dict[str, Any]) -> None:
    cfg, manifest, wh = adversarial["cfg"], adversarial["manifest"], adversarial["wh"]
    for source in (adversarial["maria"], adversarial["pg"]):
        source.run("UPDATE adv.orders SET note = 'changed during the outage' WHERE tenant = 't3'")
    _until_equal(cfg, manifest, ["maria_orders", "pg_orders"], "before the outage")
    for sink in manifest.sinks:  # no compaction for days, and the changes since are older than the window
        wh.run(f"DELETE FROM {_table(manifest, sink.dataset, '_datapipe_compaction')} WHERE TRUE")
        for table in sink.tables:
            wh.run(
                f"UPDATE {_table(manifest, sink.dataset, table.table)} SET _kafka = STRUCT(_kafka.topic AS topic, "
                "_kafka.partition AS partition, _kafka.offset AS offset, "
                "TIMESTAMP_SUB(_kafka.insertTime, INTERVAL 3 DAY) AS insertTime) WHERE TRUE"
            )
    with pytest.raises(Exception, match="no compaction finished"):
        wh.query("SELECT * FROM `datapipe-local.adv_wh.pg_orders`")
    datapipe("compact", *adversarial["app"][:-1])
    _record(adversarial, _until_equal(cfg, manifest, ALL_VIEWS, "after the outage, one compaction", timeout=30))


def _view_cost(adv: dict[str, Any], view: str, dataset: str, table: str) -> dict[str, Any]:
    """Rows entering the view (state + recent changelog rows) and the view query's median time."""
    manifest, wh = adv["manifest"], adv["wh"]
    recent = "`_kafka`.`insertTime` IS NULL OR `_kafka`.`insertTime` >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 360 MINUTE)"
    state = int(wh.query(f"SELECT COUNT(*) AS n FROM {_table(manifest, dataset, table + '__state')}")[0]["n"])
    changes = int(wh.query(f"SELECT COUNT(*) AS n FROM {_table(manifest, dataset, table)} WHERE {recent}")[0]["n"])
    history = int(wh.query(f"SELECT COUNT(*) AS n FROM {_table(manifest, dataset, table)}")[0]["n"])
    times = []
    for _ in range(3):
        began = time.monotonic()
        rows = wh.query(f"SELECT * FROM `datapipe-local.adv_wh.{view}`")
        times.append(time.monotonic() - began)
    job = wh.client.query(f"SELECT * FROM `datapipe-local.adv_wh.{view}`")
    job.result()
    return {
        "view_rows": len(rows),
        "rows_read": state + changes,
        "state_rows": state,
        "recent_changelog_rows": changes,
        "changelog_rows": history,
        "median_query_s": round(statistics.median(times), 3),
        "bytes_processed_reported": job.total_bytes_processed,
    }


def test_5_view_cost_before_and_after_compaction_with_100x_history(adversarial: dict[str, Any]) -> None:
    cfg, manifest, maria, wh = adversarial["cfg"], adversarial["manifest"], adversarial["maria"], adversarial["wh"]
    for version in range(1, HISTORY_FACTOR + 1):
        maria.run(f"UPDATE adv.history SET version = {version}, payload = 'v{version}'")
    _until_equal(cfg, manifest, ["maria_history"], "history written")
    dataset, table = "adv_maria_raw", "adv_maria_adv_history"
    wh.run(f"DELETE FROM {_table(manifest, dataset, table + '__state')} WHERE TRUE")  # measure the uncompacted view
    wh.run(f"DELETE FROM {_table(manifest, dataset, '_datapipe_compaction')} WHERE `table_id` = '{table}'")
    before = _view_cost(adversarial, "maria_history", dataset, table)
    datapipe("compact", *adversarial["app"][:-1], "--sink", "maria-raw")
    # time passes: the history is now older than the window (6 hours), as it is a day later in production
    wh.run(
        f"UPDATE {_table(manifest, dataset, table)} SET _kafka = STRUCT(_kafka.topic AS topic, _kafka.partition AS partition, "
        "_kafka.offset AS offset, TIMESTAMP_SUB(_kafka.insertTime, INTERVAL 1 DAY) AS insertTime) WHERE TRUE"
    )
    after = _view_cost(adversarial, "maria_history", dataset, table)
    _record(adversarial, {"step": "view cost, 100x history", "before_compaction": before, "after_compaction": after})
    assert before["view_rows"] == after["view_rows"] == HISTORY_ROWS
    assert before["changelog_rows"] >= HISTORY_ROWS * HISTORY_FACTOR
    assert before["rows_read"] >= HISTORY_ROWS * HISTORY_FACTOR
    assert after["rows_read"] == HISTORY_ROWS, "after compaction a view reads the table, not its history"
    _until_equal(cfg, manifest, ["maria_history"], "history after compaction", timeout=30)


def test_6_the_quality_reconciliation_fails_on_one_differing_value(adversarial: dict[str, Any]) -> None:
    manifest, wh = adversarial["manifest"], adversarial["wh"]
    datapipe("compact", *adversarial["app"][:-1])
    for dataset, table in _changelogs(manifest):
        wh.run(f"DELETE FROM {_table(manifest, dataset, table)} WHERE TRUE")
    report = run_quality(manifest, load_credentials(), settle_s=0, progress_bar=False, progress_wait_s=2)
    values = {c.table: c for c in report.checks if c.check == "values_match"}
    assert all(c.status == "pass" for c in values.values()), [c for c in values.values() if c.status != "pass"]
    wh.run(
        "UPDATE `datapipe-local.adv_pg_raw.adv_pg_adv_types__state` SET c_num20 = '1.000001' "
        "WHERE id = 1 AND at = 1705322096000000"
    )
    report = run_quality(manifest, load_credentials(), settle_s=0, progress_bar=False, progress_wait_s=2)
    failed = [c for c in report.checks if c.check == "values_match" and c.status == FAIL]
    assert [c.table for c in failed] == ["adv_wh.pg_types"]
    assert "1 cells differ in c_num20 (1 rows)" in failed[0].detail
    assert "source Decimal('99999999999999.999999'), view Decimal('1.000001')" in failed[0].detail
    assert not report.passed
