"""Freshness objectives, live: met while the pipeline idles (the heartbeat travels the whole path), missed while
the sink is paused (``datapipe freshness`` exits 1 and says which table), met again once it resumes."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datapipe_cdk.local.config import StackConfig
from integration.conftest import datapipe

pytestmark = pytest.mark.integration

OBJECTIVE_S = 20
APP = f"""
from datetime import timedelta

from datapipe_cdk import (App, BigQuerySink, CdcSource, Column, ColumnType, ConnectCluster, DataPipelineStack,
                          GcpProject, KafkaCluster, MicroWarehouse, Principal, Table)

OWNER = Principal.group("ops@fresh.example")


def build(outdir: str) -> App:
    app = App(outdir=outdir)
    stack = DataPipelineStack(
        app, "fresh",
        kafka=KafkaCluster(bootstrap_servers=["kafka.fresh.example:9093"], sasl_username="deployer"),
        connect=ConnectCluster(url="https://connect.fresh.example", principal=Principal.kafka_user("connect"),
                               basic_auth_username="deployer"),
        gcp=GcpProject(project="fresh-data-prod"),
    )
    source = CdcSource(stack, "fresh-db", engine="postgresql", host="pg.fresh.example", database="fresh", schema="app",
                       tables={{"jobs": Table(["id"], [Column("id", ColumnType.INT64), Column("state")])}},
                       freshness=timedelta(seconds={OBJECTIVE_S}), owner=OWNER)
    raw = BigQuerySink(stack, "fresh-raw", source=source, dataset="fresh_raw", owners=[OWNER])
    ops = MicroWarehouse(stack, "ops", owners=[OWNER], dataset="fresh_ops", freshness=timedelta(minutes=1))
    ops.expose(raw.table("jobs"))
    return app
"""
DDL = "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.jobs (id bigint PRIMARY KEY, state text);"


@pytest.fixture(scope="module")
def fresh_app(local_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    project: Path = tmp_path_factory.mktemp("fresh")
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "ddl.sql").write_text(DDL)
    datapipe("local", "sql", "--engine", "postgres", "--database", "fresh", "-f", str(project / "ddl.sql"))
    args = ["--local", "--app", str(project / "app.py"), "--out", str(project / "cdktf.out")]
    datapipe("deploy", *args, "--auto-approve")
    try:
        yield args
    finally:
        datapipe("resume", *args, "fresh-raw", check=False)
        datapipe("destroy", *args, "--auto-approve", check=False)


def _freshness(args: list[str]) -> tuple[int, dict[str, Any]]:
    done = datapipe("freshness", *args, "--json", check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, {t["table"]: t for t in json.loads(done.stdout)["stacks"][0]["tables"]}


def _until(args: list[str], code: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found, tables = _freshness(args)
        if found == code:
            return tables
        assert time.monotonic() < deadline, f"datapipe freshness never exited {code}: {tables}"
        time.sleep(5)


def test_an_objective_is_met_at_idle_missed_while_the_sink_is_paused_and_met_again(fresh_app: list[str]) -> None:
    met = _until(fresh_app, 0, timeout=240)
    view = met["fresh_ops.jobs"]
    assert view["objective_s"] == OBJECTIVE_S and view["status"] == "met", view  # the stricter of 20 s and 1 min
    assert view["measured_by"] == "fresh-db heartbeat"
    assert view["newest_own_change_s"] is None, "the table itself never changed: the heartbeat alone shows freshness"
    datapipe("pause", *fresh_app, "fresh-raw")
    missed = _until(fresh_app, 1, timeout=OBJECTIVE_S * 6)
    assert missed["fresh_ops.jobs"]["status"] == "missed", missed
    assert missed["fresh_ops.jobs"]["staleness_s"] > OBJECTIVE_S
    text = datapipe("freshness", *fresh_app, check=False)
    assert text.returncode == 1 and "fresh_ops.jobs" in text.stdout and "missed" in text.stdout
    datapipe("resume", *fresh_app, "fresh-raw")
    _until(fresh_app, 0, timeout=240)
