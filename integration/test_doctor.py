"""``datapipe doctor`` on the local stack: a small app of its own (PostgreSQL and MariaDB sources, one sink) is
deployed and found healthy; then the databases are misconfigured the ways that break CDC in production, the
doctor fails naming each with its fix, the printed fixes are applied as they are, and the doctor passes again.

The original settings are restored in ``finally`` whatever happens (the local stack is shared by the tier).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.deploy import StackDir
from datapipe_cdk.local import databases, provision
from datapipe_cdk.local.config import StackConfig
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

APP = '''
"""Clinic: visits in PostgreSQL, stock in MariaDB."""
from cdktf import App

from datapipe_cdk import (BigQuerySink, CdcSource, Classification, Column, ColumnType, ConnectCluster,
                          DataPipelineStack, GcpProject, KafkaCluster, Principal, Table)

OPS = Principal.group("ops@clinic.example")
VISITS = Table(primary_key=["id"], columns=[
    Column("id", ColumnType.INT64, Classification.INTERNAL),
    Column("note", ColumnType.STRING, Classification.INTERNAL),
])
STOCK = Table(primary_key=["sku"], columns=[
    Column("sku", ColumnType.STRING, Classification.PUBLIC),
    Column("on_hand", ColumnType.INT64, Classification.INTERNAL),
])


def build(outdir: str) -> App:
    app = App(outdir=outdir)
    stack = DataPipelineStack(
        app, "clinic",
        kafka=KafkaCluster(bootstrap_servers=["kafka.clinic.example:9093"], brokers=3, sasl_username="deployer"),
        connect=ConnectCluster(url="https://connect.clinic.example", principal=Principal.kafka_user("connect"),
                               basic_auth_username="deployer"),
        gcp=GcpProject(project="clinic-data", location="EU"),
    )
    CdcSource(stack, "clinic-visits", engine="postgresql", host="visits-db.clinic.example", database="clinic",
              schema="care", tables={"visits": VISITS}, owner=OPS)
    stock = CdcSource(stack, "clinic-stock", engine="mysql", host="stock-db.clinic.example", database="pharmacy",
                      tables={"stock": STOCK}, owner=OPS)
    BigQuerySink(stack, "stock-raw", source=stock, dataset="clinic_stock_raw", owners=[OPS])
    return app
'''
VISITS_DDL = "CREATE SCHEMA IF NOT EXISTS care; CREATE TABLE IF NOT EXISTS care.visits (id bigint PRIMARY KEY, note text);"
STOCK_DDL = """
CREATE DATABASE IF NOT EXISTS pharmacy;
CREATE TABLE IF NOT EXISTS pharmacy.stock (sku VARCHAR(40) NOT NULL PRIMARY KEY, on_hand BIGINT NOT NULL);
"""
BUDGET = "2h"
# (component that must fail, engine the fix runs on, a statement that breaks it, what the fix must say)
BREAKAGES = [
    ("clinic-stock: binlog_row_image", "mariadb", "SET GLOBAL binlog_row_image = 'MINIMAL'",
     "SET GLOBAL binlog_row_image = 'FULL';"),
    ("clinic-stock: binlog retention", "mariadb", "SET GLOBAL binlog_expire_logs_seconds = 3600",
     "SET GLOBAL binlog_expire_logs_seconds = 7200;"),
    ("clinic-stock: CDC user grants", "mariadb", "REVOKE REPLICATION CLIENT ON *.* FROM 'debezium'@'127.0.0.1'",
     "GRANT REPLICATION CLIENT ON *.* TO 'debezium'@'127.0.0.1';"),
    ("clinic-visits: replica identity care.visits", "postgres", "ALTER TABLE care.visits REPLICA IDENTITY DEFAULT",
     'ALTER TABLE "care"."visits" REPLICA IDENTITY FULL;'),
    ("clinic-visits: CDC role privileges", "postgres", "REVOKE SELECT ON care.visits FROM debezium",
     'GRANT SELECT ON "care"."visits" TO "debezium";'),
    ("clinic-visits: publication clinic_visits_publication", "postgres",
     "ALTER PUBLICATION clinic_visits_publication DROP TABLE care.visits", 'ALTER PUBLICATION "clinic_visits_publication"'),
]  # fmt: skip


def _doctor(app: list[str], *extra: str) -> tuple[int, list[dict[str, str]]]:
    done = datapipe("doctor", *app, "--json", *extra, check=False, timeout=300)
    report = json.loads(done.stdout)
    return done.returncode, [f for stack in report["stacks"] for f in stack["findings"]]


def _one(findings: list[dict[str, str]], component: str) -> dict[str, str]:
    found = [f for f in findings if f["component"] == component]
    assert len(found) == 1, f"{component}: {found or findings}"
    return found[0]


def _errors(findings: list[dict[str, str]]) -> list[dict[str, str]]:
    return [f for f in findings if f["severity"] == "error"]


def _sql(engine: str, text: str) -> None:
    database = ["--database", "clinic"] if engine == "postgres" else []
    datapipe("local", "sql", "--engine", engine, *database, "-c", text)


def _mariadb_globals(cfg: StackConfig, names: tuple[str, ...]) -> dict[str, Any]:
    conn = databases.mariadb_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT " + ", ".join(f"@@GLOBAL.{n}" for n in names))
            return dict(zip(names, cur.fetchone() or (), strict=True))
    finally:
        conn.close()


def _restore(cfg: StackConfig, out: Path, settings: dict[str, Any]) -> None:
    """The MariaDB globals as they were, and the CDC logins, grants, replica identities and publication as
    ``datapipe deploy --local`` makes them."""
    conn = databases.mariadb_connect(cfg)
    try:
        with conn.cursor() as cur:
            for name, value in settings.items():
                cur.execute(f"SET GLOBAL {name} = %s", (value,))
    finally:
        conn.close()
    stack = StackDir.read(out, "clinic")
    for source in stack.manifest.sources:
        provision.provision_source(cfg, source)
        provision.prepare_captured_tables(cfg, source, stack.connector_config(source.connector).get("publication.name"))


def test_the_doctor_names_each_misconfiguration_and_its_printed_fix_repairs_it(local_stack: StackConfig, tmp_path: Path) -> None:
    project = tmp_path / "clinic"
    project.mkdir()
    (project / "app.py").write_text(textwrap.dedent(APP))
    out = project / "cdktf.out"
    datapipe("local", "sql", "--engine", "postgres", "--database", "clinic", "-c", VISITS_DDL)
    datapipe("local", "sql", "--engine", "mariadb", "-c", STOCK_DDL)
    for engine in ("mariadb", "postgres"):  # `local sql` shows rows, and a driver error as one plain line
        shown = datapipe("local", "sql", "--engine", engine, "-c", "SELECT 1 AS one, NULL AS nothing")
        assert "one\tnothing\n1\tNULL\n(1 row)" in shown.stdout, shown.stdout
        refused = datapipe("local", "sql", "--engine", engine, "-c", "SELEC oops", check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.startswith(f"datapipe: {engine}: "), refused.stderr
    app = ["--local", "--app", str(project / "app.py"), "--out", str(out)]
    datapipe("deploy", *app, "--auto-approve")
    try:
        code, findings = _doctor(app)
        assert code == 0 and not _errors(findings), _errors(findings)
        for component in ("clinic-stock: connector", "stock-raw: connector", "clinic-visits: connector",
                          "stock-raw: dead letters dlq.stock-raw", "clinic-stock: Kafka ACLs",
                          "clinic-visits: topic clinic-visits.care.visits", "clinic-visits: columns of visits",
                          "clinic-stock: columns of stock"):  # fmt: skip
            assert _one(findings, component)["severity"] == "ok"

        original = _mariadb_globals(local_stack, ("binlog_row_image", "binlog_expire_logs_seconds"))
        try:
            for _, engine, breaking, _ in BREAKAGES:
                _sql(engine, breaking)
            code, findings = _doctor(app, "--outage-budget", BUDGET)
            assert code == 1
            for component, _, _, fix in BREAKAGES:
                finding = _one(findings, component)
                assert finding["severity"] == "error" and fix in finding["fix"], finding
            for component, engine, _, _ in BREAKAGES:  # apply each printed fix as printed
                _sql(engine, _one(findings, component)["fix"])
            code, findings = _doctor(app, "--outage-budget", BUDGET)
            assert code == 0 and not _errors(findings), _errors(findings)
            assert all(_one(findings, component)["severity"] == "ok" for component, *_ in BREAKAGES)
        finally:
            _restore(local_stack, out, original)
    finally:
        datapipe("destroy", *app, "--auto-approve", check=False)
