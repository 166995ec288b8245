"""Faults with nothing lost: a writer changes rows at a steady rate while a part of the stack fails.

One app (a MariaDB and a PostgreSQL source, a sink each, one warehouse) is deployed once. For each fault, in
order, a writer per engine inserts, updates and deletes rows of ``events`` (60 / 30 / 10 %, about 3 changes a
second each) for a while, the fault happens, the writer goes on, then stops; once the pipeline has drained,
every source row must equal its latest-state view row (values compared by the quality checks' own
reconciliation, :mod:`datapipe_cdk.runtime.reconcile`) and nothing deleted may be visible. Duplicates (a
record written to a changelog twice, e.g. re-delivered after a crash) may exist only in the changelogs: they
are counted by their Kafka position.

Faults: the Connect worker killed with SIGKILL and started again; the Kafka broker restarted; MariaDB and
PostgreSQL restarted; the BigQuery emulator restarted; every connector's tasks restarted through Connect's
REST API mid-stream; and, on a three-broker stack (``DATAPIPE_KAFKA_BROKERS=3``: topics with 3 replicas,
``min.insync.replicas=2``; ``make test`` runs that one in its own session, marker ``three_brokers``), one
broker killed with SIGKILL while the other two carry on, then brought back until every replica is in sync.
Each fault's figures go to ``<run>/reports/faults.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.connect_api import ConnectClient
from datapipe_cdk.local import bigquery, connect, databases, kafka
from datapipe_cdk.local.config import StackConfig
from datapipe_cdk.manifest import Manifest
from datapipe_cdk.runtime.credentials import load_credentials
from datapipe_cdk.runtime.reconcile import Reconciliation, reconcile
from datapipe_cdk.runtime.source import SourceDatabase
from datapipe_cdk.runtime.warehouse import WarehouseClient
from integration import flow
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

STACK = "faults"
RATE_PER_S = 3.0
BEFORE_S, AFTER_S = 12.0, 12.0
DRAIN_S = 360.0
VIEWS = {"mariadb": "events", "postgres": "pg_events"}

APP = """
from datapipe_cdk import App
from datapipe_cdk import (BigQuerySink, CdcSource, Column, ColumnType as T, ConnectCluster, DataPipelineStack,
                          GcpProject, KafkaCluster, MicroWarehouse, Principal, Table)

OWNER = Principal.group("sre@faults.example")
EVENTS = Table(["id"], [Column("id", T.INT64), Column("grp", T.INT64), Column("val"), Column("amount", T.NUMERIC),
                        Column("changed_at", T.DATETIME)])


def build(outdir):
    app = App(outdir=outdir)
    stack = DataPipelineStack(app, "faults", kafka=KafkaCluster(bootstrap_servers=["k:9092"], sasl_username="deployer"),
        connect=ConnectCluster(url="https://c", principal=Principal.kafka_user("connect"), basic_auth_username="d"),
        gcp=GcpProject(project="faults-data", allowed_domains=["faults.example"]))
    maria = CdcSource(stack, "ft-db", engine="mariadb", host="db", database="faultdb", tables={"events": EVENTS},
                      owner=OWNER)
    pg = CdcSource(stack, "ft-pg", engine="postgresql", host="pg", database="faultdb", schema="ft",
                   tables={"events": EVENTS}, owner=OWNER)
    raw = BigQuerySink(stack, "ft-raw", source=maria, dataset="ft_raw", owners=[OWNER])
    pg_raw = BigQuerySink(stack, "ft-pg-raw", source=pg, dataset="ft_pg_raw", owners=[OWNER])
    warehouse = MicroWarehouse(stack, "ft-wh", owners=[OWNER], dataset="ft_wh")
    warehouse.expose(raw.table("events"))
    warehouse.expose(pg_raw.table("events"), name="pg_events")
    return app
"""
MARIA_DDL = """
CREATE DATABASE IF NOT EXISTS faultdb;
CREATE TABLE faultdb.events (id BIGINT NOT NULL PRIMARY KEY, grp BIGINT, val VARCHAR(40), amount DECIMAL(12,2),
                             changed_at DATETIME(6));
"""
PG_DDL = """
CREATE SCHEMA IF NOT EXISTS ft;
CREATE TABLE ft.events (id BIGINT NOT NULL PRIMARY KEY, grp BIGINT, val VARCHAR(40), amount NUMERIC(12,2),
                        changed_at TIMESTAMP(6));
"""


class Writer(threading.Thread):
    """Inserts, updates and deletes ``events`` rows of one engine at ``RATE_PER_S``; counts only what committed.
    While the database is away it retries with a new connection (the fault, not a test failure)."""

    def __init__(self, cfg: StackConfig, engine: str, first_id: int) -> None:
        super().__init__(daemon=True, name=f"writer-{engine}")
        self.cfg, self.engine = cfg, engine
        self.next_id = first_id
        self.live: list[int] = []
        self.committed = {"insert": 0, "update": 0, "delete": 0}
        self.refused = 0
        self.stopping = threading.Event()
        self.random = random.Random(f"{engine}-{first_id}")

    def _connect(self) -> Any:
        if self.engine == "mariadb":
            conn = databases.mariadb_connect(self.cfg, database="faultdb")
            conn.autocommit(True)
            return conn
        conn = databases.postgres_connect(self.cfg, dbname="faultdb")
        conn.autocommit = True
        return conn

    def _change(self, conn: Any) -> str:
        table = "faultdb.events" if self.engine == "mariadb" else "ft.events"
        roll = self.random.random()
        now = "NOW(6)" if self.engine == "mariadb" else "clock_timestamp()"
        if roll < 0.6 or len(self.live) < 5:
            key = self.next_id
            self.next_id += 1  # before it runs: an insert that committed unacknowledged must not be retried
            statement = (f"INSERT INTO {table} VALUES ({key}, {key % 7}, 'v{key}', {self.random.randint(0, 10**6) / 100},"
                         f" {now})")  # fmt: skip
            kind = "insert"
        elif roll < 0.9:
            key = self.random.choice(self.live)
            statement = f"UPDATE {table} SET val = 'u{self.random.randint(0, 10**9)}', changed_at = {now} WHERE id = {key}"
            kind = "update"
        else:
            key = self.live.pop(self.random.randrange(len(self.live)))
            statement = f"DELETE FROM {table} WHERE id = {key}"
            kind = "delete"
        if self.engine == "mariadb":
            with conn.cursor() as cur:
                cur.execute(statement)
        else:
            conn.execute(statement)
        if kind == "insert":
            self.live.append(key)
        return kind

    def run(self) -> None:
        conn = None
        while not self.stopping.is_set():
            try:
                conn = conn or self._connect()
                self.committed[self._change(conn)] += 1
            except Exception:  # the database is away during its fault: the change is not counted
                self.refused += 1
                conn = None
            self.stopping.wait(1.0 / RATE_PER_S)
        if conn is not None:
            conn.close()

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.join(30)
        return {"committed": dict(self.committed), "refused_while_away": self.refused}


class Faults:
    def __init__(self, cfg: StackConfig, project: Path) -> None:
        self.cfg, self.project = cfg, project
        self.args = ["--local", "--app", str(project / "app.py"), "--out", str(project / "cdktf.out")]
        self.connect = ConnectClient(cfg.connect_url, connect.REST_USER, connect.rest_password(cfg))
        self.next_ids = {"mariadb": 1, "postgres": 1}
        self.report: list[dict[str, Any]] = []

    def manifest(self) -> Manifest:
        path = self.cfg.run_dir / "manifests" / f"{STACK}.json"
        return Manifest.from_dict(json.loads(path.read_text()), str(path))

    def connectors(self) -> list[str]:
        return [c for c in self.connect.connectors() if c.startswith("ft-")]

    def reconcile(self) -> dict[str, Reconciliation]:
        manifest = self.manifest()
        credentials = load_credentials()
        warehouse = WarehouseClient(manifest.bigquery)
        found = {}
        for pipe in manifest.pipes():
            if pipe.view is None:
                continue
            with SourceDatabase(pipe.source, credentials.database(pipe.source)) as db:
                found[pipe.view.name] = reconcile(db, warehouse, pipe, db.columns(pipe.source_table.name))
        return found

    def duplicates(self) -> dict[str, int]:
        """Changelog rows beyond the first per Kafka position (re-deliveries the views absorb)."""
        manifest = self.manifest()
        client = bigquery.client(self.cfg)
        found = {}
        for sink in manifest.sinks:
            for table in sink.tables:
                name = f"`{manifest.bigquery.project}.{sink.dataset}.{table.table}`"
                sql = (f"SELECT COUNT(*) - COUNT(DISTINCT FORMAT('%d/%d', _kafka.partition, _kafka.offset)) AS extra "
                       f"FROM {name}")  # fmt: skip
                found[table.table] = int(next(iter(client.query_and_wait(sql)))["extra"])
        return found

    def restart_failed_tasks(self) -> list[str]:
        """Restart what a fault left FAILED (what an operator or ``datapipe doctor``'s fix does); names restarted."""
        restarted = []
        for name in self.connectors():
            state = self.connect.status(name)
            if state.state == "FAILED" or "FAILED" in state.tasks:
                self.connect.restart(name)
                restarted.append(name)
        return restarted

    def run(self, name: str, fault: Callable[[], None]) -> dict[str, Any]:
        writers = {engine: Writer(self.cfg, engine, first) for engine, first in self.next_ids.items()}
        for writer in writers.values():
            writer.start()
        time.sleep(BEFORE_S)
        began = time.monotonic()
        fault()
        back = time.monotonic()
        time.sleep(AFTER_S)
        written = {engine: writer.stop() for engine, writer in writers.items()}
        self.next_ids = {engine: writer.next_id for engine, writer in writers.items()}
        stopped = time.monotonic()
        restarted: list[str] = []
        deadline = stopped + DRAIN_S
        while True:
            restarted += self.restart_failed_tasks()
            found = self.reconcile()
            if all(r.ok for r in found.values()):
                break
            if time.monotonic() > deadline:
                problems = {n: r.summary() for n, r in found.items() if not r.ok}
                raise AssertionError(f"{name}: views differ from their sources {DRAIN_S:.0f}s after the writers stopped: "
                                     f"{problems}; written {written}; restarted {restarted}")  # fmt: skip
            time.sleep(3.0)
        entry = {
            "fault": name,
            "fault_s": round(back - began, 1),
            "written": written,
            "rows_compared": {n: r.source_rows for n, r in found.items()},
            "columns_compared": {n: len(r.compared_columns) for n, r in found.items()},
            "differences": 0,
            "drained_s_after_writers_stopped": round(time.monotonic() - stopped, 1),
            "recovered_s_after_fault": round(time.monotonic() - back, 1),
            "duplicates_in_changelogs": self.duplicates(),
            "failed_tasks_restarted": sorted(set(restarted)),
        }
        self.report.append(entry)
        reports = self.cfg.run_dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "faults.json").write_text(json.dumps(self.report, indent=2) + "\n")
        print(json.dumps(entry))
        return entry


@pytest.fixture(scope="module")
def faults(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    project = tmp_path_factory.mktemp("faults")
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "maria.sql").write_text(MARIA_DDL)
    (project / "pg.sql").write_text(PG_DDL)
    datapipe("local", "sql", "--engine", "mariadb", "-f", str(project / "maria.sql"))
    datapipe("local", "sql", "--engine", "postgres", "--database", "faultdb", "-f", str(project / "pg.sql"))
    app = Faults(local_stack, project)
    datapipe("deploy", *app.args, "--auto-approve")
    try:
        app.connect.wait_running(app.connectors(), timeout=180)
        yield app
    finally:
        datapipe("local", "up", check=False, timeout=600)  # whatever a failed fault left stopped
        datapipe("destroy", *app.args, "--auto-approve", check=False)


def _service(action: str, name: str) -> None:
    datapipe("local", action, "--only", name, timeout=600)


def _pid(cfg: StackConfig, name: str) -> int:
    return int((cfg.run_dir / "pids" / f"{name}.pid").read_text().split()[0])


def test_1_connect_worker_killed(faults: Faults) -> None:
    def kill_and_start() -> None:
        pid = _pid(faults.cfg, "connect")
        os.kill(pid, signal.SIGKILL)
        flow.wait_for(lambda: not _alive(pid) or None, 60, "the Connect worker to die")
        _service("up", "connect")
        faults.connect.wait_running(faults.connectors(), timeout=240)

    faults.run("connect-worker-kill-9", kill_and_start)


def test_2_kafka_broker_restarted(faults: Faults) -> None:
    faults.run("kafka-broker-restart", lambda: (_service("down", "kafka"), _service("up", "kafka")))


def test_3_databases_restarted(faults: Faults) -> None:
    faults.run("mariadb-and-postgresql-restart", lambda: (_service("down", "databases"), _service("up", "databases")))


def test_4_bigquery_emulator_restarted(faults: Faults) -> None:
    faults.run("bigquery-emulator-restart", lambda: (_service("down", "bigquery"), _service("up", "bigquery")))


def test_5_every_task_restarted_through_the_rest_api(faults: Faults) -> None:
    def restart_all() -> None:
        for name in faults.connectors():
            code, body = faults.connect.call("POST", f"/connectors/{name}/restart?includeTasks=true")
            assert code in (200, 202, 204), (name, code, body)

    faults.run("tasks-restarted-via-rest", restart_all)


@pytest.mark.three_brokers
def test_6_one_of_three_brokers_killed(faults: Faults) -> None:
    if faults.cfg.kafka_brokers < 3:
        pytest.skip(f"needs a three-broker local stack (DATAPIPE_KAFKA_BROKERS=3); this one runs {faults.cfg.kafka_brokers}")
    topics = _replication(faults)
    assert topics and all(t == (3, 3, "2") for t in topics.values()), f"not 3 replicas, min.insync 2: {topics}"

    def kill_and_bring_back() -> None:
        name = kafka.node_name(2)
        pid = _pid(faults.cfg, name)
        os.kill(pid, signal.SIGKILL)
        flow.wait_for(lambda: not _alive(pid) or None, 60, f"{name} to die")
        flow.wait_for(lambda: _in_sync(faults) == 2 or None, 120, "the partitions to shrink to two in-sync replicas")
        time.sleep(10.0)  # the pipeline runs on two brokers (acks=all still met: min.insync.replicas=2)
        _service("up", "kafka")  # starts the missing node only
        flow.wait_for(lambda: _in_sync(faults) == 3 or None, 180, "the broker to catch up: every replica in sync again")

    faults.run("kafka-1-of-3-brokers-kill-9", kill_and_bring_back)


def _replication(faults: Faults) -> dict[str, tuple[int, int, str]]:
    """Per app topic: (replicas of its least replicated partition, in-sync replicas of its least in-sync
    partition, ``min.insync.replicas``), read from the brokers as admin."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    wanted = _app_topics(faults)
    admin = AdminClient(flow.kafka_config(faults.cfg, kafka.ADMIN))
    listed = admin.list_topics(timeout=30).topics
    names = sorted(wanted & set(listed))
    assert len(names) == len(wanted), f"topics missing on the brokers: {sorted(wanted - set(listed))}"
    configs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    found = {}
    for resource, future in configs.items():
        meta = listed[resource.name].partitions.values()
        found[resource.name] = (
            min(len(p.replicas) for p in meta),
            min(len(p.isrs) for p in meta),
            future.result(timeout=30)["min.insync.replicas"].value,
        )
    return found


def _app_topics(faults: Faults) -> set[str]:
    """The deployed app's table topics, from its manifest."""
    return {t.topic for source in faults.manifest().sources for t in source.tables}


def _in_sync(faults: Faults) -> int | None:
    """The fewest in-sync replicas of any partition of the app's topics, from cluster metadata (any live
    broker answers); None while no broker answers."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    wanted = _app_topics(faults)
    try:
        listed = AdminClient(flow.kafka_config(faults.cfg, kafka.ADMIN)).list_topics(timeout=10).topics
    except KafkaException:
        return None
    return min((len(p.isrs) for name in wanted & set(listed) for p in listed[name].partitions.values()), default=None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
