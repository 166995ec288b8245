"""A newcomer's own pipeline: an app that lives outside this repository, with its own tables and its own
database schema, deployed onto the local stack with the ``datapipe`` command only, as the README shows.

Nothing here imports the app or the examples: the test writes files a user would write, runs the
commands a user would run, then checks rows land in the latest-state views, values included.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.local import bigquery, databases
from datapipe_cdk.local.config import StackConfig
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

APP = '''
"""Shop: orders in PostgreSQL (composite key), stock in MariaDB; one warehouse for the ops team."""
from datetime import timedelta

from datapipe_cdk import App

from datapipe_cdk import (BigQuerySink, CdcSource, Classification, Column, ColumnType, ConnectCluster,
                          DataPipelineStack, GcpProject, KafkaCluster, MicroWarehouse, Principal, Table)

OPS = Principal.group("ops@shop.example")
ORDERS = Table(primary_key=["tenant", "order_no"], columns=[
    Column("tenant", ColumnType.STRING, Classification.INTERNAL),
    Column("order_no", ColumnType.INT64, Classification.INTERNAL),
    Column("customer_email", ColumnType.STRING, Classification.PII, "EMAIL_ADDRESS"),
    Column("total_cents", ColumnType.INT64, Classification.CONFIDENTIAL),
    Column("note", ColumnType.STRING, Classification.INTERNAL),
])
STOCK = Table(primary_key=["sku"], columns=[
    Column("sku", ColumnType.STRING, Classification.PUBLIC),
    Column("on_hand", ColumnType.INT64, Classification.INTERNAL),
])


def build(outdir: str) -> App:
    app = App(outdir=outdir)
    stack = DataPipelineStack(
        app, "shop",
        kafka=KafkaCluster(bootstrap_servers=["kafka.shop.example:9093"], brokers=3, sasl_username="deployer"),
        connect=ConnectCluster(url="https://connect.shop.example", principal=Principal.kafka_user("connect"),
                               basic_auth_username="deployer"),
        gcp=GcpProject(project="shop-data-prod", location="EU"),
    )
    orders = CdcSource(stack, "shop-orders", engine="postgresql", host="orders-db.shop.example", database="shop",
                       schema="sales", tables={"orders": ORDERS}, masked={"orders": ["customer_email"]}, owner=OPS)
    stock = CdcSource(stack, "shop-stock", engine="mysql", host="stock-db.shop.example", database="stock",
                      tables={"stock": STOCK}, owner=OPS)
    raw_orders = BigQuerySink(stack, "orders-raw", source=orders, dataset="shop_orders_raw", owners=[OPS],
                              retention=timedelta(days=90))
    raw_stock = BigQuerySink(stack, "stock-raw", source=stock, dataset="shop_stock_raw", owners=[OPS])
    ops = MicroWarehouse(stack, "ops", owners=[OPS], dataset="shop_ops")
    ops.expose(raw_orders.table("orders"))
    ops.expose(raw_stock.table("stock"))
    return app
'''

ORDERS_DDL = """
CREATE SCHEMA IF NOT EXISTS sales;
CREATE TABLE IF NOT EXISTS sales.orders (
    tenant text NOT NULL,
    order_no bigint NOT NULL,
    customer_email text,
    total_cents bigint NOT NULL,
    note text,
    PRIMARY KEY (tenant, order_no)
);
"""
STOCK_DDL = """
CREATE DATABASE IF NOT EXISTS stock;
CREATE TABLE IF NOT EXISTS stock.stock (sku VARCHAR(40) NOT NULL PRIMARY KEY, on_hand BIGINT NOT NULL);
"""


def _view(client: Any, table: str, key: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = client.query_and_wait(f"SELECT * FROM `{bigquery.PROJECT}.shop_ops.{table}`")
    return {tuple(row[k] for k in key): dict(row.items()) for row in rows}


def _wait(probe: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last is True or (last and last is not None and not isinstance(last, bool)):
            return last
        time.sleep(1.0)
    raise AssertionError(f"timed out; last check: {last}")


def test_an_app_outside_the_repository_deploys_onto_the_local_stack_and_rows_land(
    local_stack: StackConfig, tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "orders.sql").write_text(ORDERS_DDL)
    (project / "stock.sql").write_text(STOCK_DDL)
    out = project / "cdktf.out"
    datapipe("local", "sql", "--engine", "postgres", "--database", "shop", "-f", str(project / "orders.sql"))
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(project / "stock.sql"))
    assert datapipe("validate", "--local", "--app", str(project / "app.py")).returncode == 0
    app = ["--local", "--app", str(project / "app.py"), "--out", str(out), "--auto-approve"]
    datapipe("deploy", *app)
    try:
        cfg = local_stack
        with databases.postgres_connect(cfg, dbname="shop") as pg:
            pg.execute("INSERT INTO sales.orders VALUES ('acme', 1, 'a@x.example', 1250, 'first'), ('acme', 2, NULL, 99, ''),"
                       " ('globex', 1, 'g@y.example', 5, 'same order_no, other tenant')")  # fmt: skip
            pg.execute("UPDATE sales.orders SET total_cents = 1300, note = 'changed' WHERE tenant = 'acme' AND order_no = 1")
            pg.execute("DELETE FROM sales.orders WHERE tenant = 'acme' AND order_no = 2")
        conn = databases.mariadb_connect(cfg, database="stock")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO stock (sku, on_hand) VALUES ('A-1', 5), ('B-2', 0)")
            cur.execute("UPDATE stock SET on_hand = 4 WHERE sku = 'A-1'")
        conn.close()
        client = bigquery.client(cfg)
        expected_orders = {
            ("acme", 1): {"tenant": "acme", "order_no": 1, "customer_email": "********", "total_cents": 1300, "note": "changed"},
            ("globex", 1): {"tenant": "globex", "order_no": 1, "customer_email": "********", "total_cents": 5,
                            "note": "same order_no, other tenant"},
        }  # fmt: skip
        _wait(lambda: _view(client, "orders", ("tenant", "order_no")) == expected_orders or None)
        expected_stock = {("A-1",): {"sku": "A-1", "on_hand": 4}, ("B-2",): {"sku": "B-2", "on_hand": 0}}
        _wait(lambda: _view(client, "stock", ("sku",)) == expected_stock or None)
    finally:
        datapipe("destroy", *app)
    with databases.postgres_connect(local_stack, dbname="shop") as pg:
        slots = pg.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
        publications = pg.execute("SELECT pubname FROM pg_publication").fetchall()
    assert not [s for s in slots if s[0].startswith("shop")], f"replication slot left behind: {slots}"
    assert not [p for p in publications if p[0].startswith("shop")], f"publication left behind: {publications}"
